"""Generators, selected by name from `GENERATORS`: answers with numbered citations."""

from mmrag.generate.base import Answer, Citation, Generator, StreamItem
from mmrag.registry import Registry

GENERATORS: Registry[Generator] = Registry(
    "generator",
    {
        "llm": "mmrag.generate.llm:LLMGenerator",
    },
)

__all__ = ["GENERATORS", "Answer", "Citation", "Generator", "StreamItem"]
