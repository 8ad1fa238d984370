"""Generators, selected by name from `GENERATORS`: answers with numbered citations."""

from mmrag.generate.base import NOT_FOUND, Answer, Citation, Generator, SentenceSupport, StreamItem
from mmrag.registry import Registry

GENERATORS: Registry[Generator] = Registry(
    "generator",
    {
        "llm": "mmrag.generate.llm:LLMGenerator",
    },
)

__all__ = [
    "GENERATORS",
    "NOT_FOUND",
    "Answer",
    "Citation",
    "Generator",
    "SentenceSupport",
    "StreamItem",
]
