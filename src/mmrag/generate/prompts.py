"""The answering prompt: numbered passages, the question, and how to cite.

Passages are numbered from 1 in context order; each carries its source (and page or
time span) so the model, and a reader of the prompt, can tell them apart. For a
multimodal endpoint, image passages travel as OpenAI-style image parts next to their
number; for a text-only model they are represented by their text (caption, OCR).
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from mmrag.types import Document, Hit, Modality

# Two answer styles. "short" asks for the fewest words that answer (a name, a date, a
# phrase copied from the passage), which is what a reader scans for and what extractive
# QA scores; "sentence" asks for one full sentence. Worked examples go in as earlier
# chat turns, never inside the system prompt: Qwen2.5 copied an inline example ("The
# tower is 330 metres tall [2]") as the answer to an unrelated SQuAD question, and
# Qwen2.5-0.5B told only in words to be brief kept writing sentences or "[1]" alone.
# The examples are a fixed prefix of every prompt, so llama.cpp (and servers with
# prefix caching) evaluate them once, not per question. Repeating the question after
# the passages keeps a small model on it. Small models told to say when the passages
# lack the answer say so far too often (Qwen2.5-0.5B: 9 of 12 answerable SQuAD
# questions), so that decision is the relevance judge's (grounding.py); a model that
# still declines is recognised by `llm.is_refusal`.
SHORT_SYSTEM = (
    "You answer questions using only the numbered passages you are given. Reply with "
    "the answer alone, in as few words as possible, copied from the passage (a name, a "
    "date, a number or a short phrase), then the number of that passage in square "
    "brackets. Write a full sentence only when a short phrase cannot answer the question."
)
SHORT_INSTRUCTION = (
    "Question: {question}\nReply with the shortest answer from the passages, then its "
    "passage number in square brackets."
)
# A why or how question asked in the short style still wants its reason: told to be
# brief, Qwen2.5-1.5B answered "Why does sourdough rise without commercial yeast?" with
# "Because it relies on a starter", leaving out the yeasts that do the raising.
EXPLAIN_INSTRUCTION = (
    "Question: {question}\nAnswer in one sentence that gives the reason or the process "
    "the passages describe, then its passage number in square brackets."
)
# A question that asks two things ("Who invented the printing press, and when?") got
# only its first part in the short style ("Gutenberg [2]").
SEVERAL_INSTRUCTION = (
    "Question: {question}\nThe question asks more than one thing: answer every part of "
    "it, briefly, then the passage number in square brackets."
)
SENTENCE_SYSTEM = (
    "You answer questions using only the numbered passages you are given. Answer in one "
    "short sentence and end it with the number of the passage you used in square brackets."
)
SENTENCE_INSTRUCTION = (
    "Question: {question}\nWrite the answer as one full sentence, followed by the number of "
    "the passage it comes from in square brackets."
)


@dataclass(frozen=True, slots=True)
class Example:
    """A worked question: passages as (source name, text), and the reply to imitate."""

    question: str
    passages: tuple[tuple[str, str], ...]
    answer: str


# Written for the prompt, not taken from any evaluation set. The second passage of the
# first example is the one that answers, so the examples do not teach "always cite [1]".
_TELESCOPES = (
    (
        "webb.txt",
        "The James Webb Space Telescope was launched on 25 December 2021 on an "
        "Ariane 5 rocket from French Guiana.",
    ),
    (
        "hubble.txt",
        "The Hubble Space Telescope was carried into orbit by the Space Shuttle "
        "Discovery in April 1990. Air in the atmosphere moves and bends incoming light, which "
        "blurs what ground telescopes see; in orbit, Hubble is above that distortion.",
    ),
)
_RIVER = (("长江.txt", "长江是中国最长的河流，全长约6300公里，流经11个省级行政区，最后注入东海。"),)
SHORT_EXAMPLES = (
    Example("When did the Hubble Space Telescope reach orbit?", _TELESCOPES, "April 1990 [2]"),
    Example(
        "Why does Hubble see more sharply than telescopes on the ground?",
        _TELESCOPES,
        "Because it is above the atmosphere, whose moving air bends and blurs light [2].",
    ),
    Example("长江最后流入哪里？", _RIVER, "东海[1]"),
)
SENTENCE_EXAMPLES = (
    Example(
        "When did the Hubble Space Telescope reach orbit?",
        _TELESCOPES,
        "The Hubble Space Telescope reached orbit in April 1990, carried by the Space "
        "Shuttle Discovery [2].",
    ),
)


class Style(NamedTuple):
    """A system prompt, the instruction after the passages, the worked examples, and
    the instructions that replace it for a question asking why or how (`explain`) and
    for one asking several things (`several`); None: the instruction itself."""

    system: str
    instruction: str
    examples: tuple[Example, ...]
    explain: str | None = None
    several: str | None = None


STYLES: dict[str, Style] = {
    "short": Style(
        SHORT_SYSTEM, SHORT_INSTRUCTION, SHORT_EXAMPLES, EXPLAIN_INSTRUCTION, SEVERAL_INSTRUCTION
    ),
    "sentence": Style(SENTENCE_SYSTEM, SENTENCE_INSTRUCTION, SENTENCE_EXAMPLES),
}
DEFAULT_STYLE = "short"
SYSTEM, INSTRUCTION, EXAMPLES, EXPLAIN, SEVERAL = STYLES[DEFAULT_STYLE]

# "How" asks for a process unless a measure follows it ("how many", "how long").
_HOW_MEASURE = (
    "many much long old far big tall large small often soon fast high deep wide early "
    "late heavy hot cold"
).split()
_EXPLAIN_PHRASES = ("explain", "describe", "what causes", "what happens", "in what way")
_EXPLAIN_ZH = ("为什么", "为何", "如何", "怎么", "怎样", "原因")


def asks_for_explanation(question: str) -> bool:
    """True for a question whose answer is a reason or a process, not a name or a number."""
    if any(marker in question for marker in _EXPLAIN_ZH):
        return "多少" not in question and "多久" not in question
    words = re.findall(r"[a-z']+", question.lower())
    for i, word in enumerate(words):
        if word == "why":
            return True
        if word == "how" and (i + 1 == len(words) or words[i + 1] not in _HOW_MEASURE):
            return True
    text = " ".join(words)
    return any(phrase in text for phrase in _EXPLAIN_PHRASES)


_WH = r"(who|whom|whose|what|when|where|which|why|how)"
# "who ... and when", "when and where", "..., and from where": a second question word
# after "and". "Who was king when ..." asks one thing, so a bare second word is not enough.
_SEVERAL = re.compile(
    rf"\b{_WH}\b.*\band\s+(?:(?:from|in|at|to|on|by|for|of|with)\s+)?{_WH}\b", re.IGNORECASE
)
_WH_ZH = ("谁", "什么时候", "何时", "哪一年", "哪年", "哪里", "哪儿", "在哪", "多少", "什么")
_AND_ZH = ("和", "以及", "并且", "，")


def asks_several(question: str) -> bool:
    """True for a question that asks two or more things at once."""
    if _SEVERAL.search(question):
        return True
    found = [w for w in _WH_ZH if w in question]
    # "什么时候" contains "什么": count the longer one only
    if "什么时候" in found and "什么" in found and question.count("什么") == 1:
        found.remove("什么")
    return len(found) >= 2 and any(a in question for a in _AND_ZH)


def instruction_for(
    question: str, instruction: str, explain: str | None, several: str | None = None
) -> str:
    chosen = instruction
    if explain is not None and asks_for_explanation(question):
        chosen = explain
    elif several is not None and asks_several(question):
        chosen = several
    return chosen.replace("{question}", question)


IMAGE_MODALITIES = (Modality.IMAGE, Modality.PAGE)
IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif"}

# Finds the file behind a document's media reference (None when there is none).
MediaResolver = Callable[[Document], Path | None]
ChatMessage = dict[str, Any]  # content is a string, or a list of parts for multimodal input


def passage_header(number: int, hit: Hit) -> str:
    """ "Passage [n] (from title, p. 3):": what a reader needs to tell passages apart.

    Spelled out rather than a bare "[n] (title)", which small models copied into their
    answers as if it were text (Qwen2.5-0.5B on the sample corpus: 2 of 4 answers).
    """
    doc = hit.doc
    where = ""
    if doc.span is not None and doc.span.page is not None:
        where = f"p. {doc.span.page}"
    elif doc.span is not None and doc.span.t_start is not None:
        where = f"{doc.span.t_start:.0f}-{(doc.span.t_end or doc.span.t_start):.0f} s"
    title = doc.metadata.get("title") if isinstance(doc.metadata.get("title"), str) else None
    name = title or (Path(doc.source).name if doc.source else doc.group)
    return f"Passage [{number}] (from {name}{', ' + where if where else ''}):"


def passage_text(hit: Hit, max_chars: int) -> str:
    text = " ".join(hit.text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def image_part(path: Path) -> dict[str, Any] | None:
    """An OpenAI `image_url` part holding the file as a data URL, or None if not an image."""
    mime, _ = mimetypes.guess_type(path.name)
    if mime not in IMAGE_TYPES or not path.is_file():
        return None
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def build_messages(
    question: str,
    hits: Sequence[Hit],
    *,
    system: str = SYSTEM,
    instruction: str = INSTRUCTION,
    examples: Sequence[Example] = (),
    explain: str | None = None,
    several: str | None = None,
    max_passage_chars: int = 1500,
    images: bool = False,
    media: MediaResolver | None = None,
) -> list[ChatMessage]:
    """System, the worked examples as earlier turns, then the user message: the
    question, the numbered passages, the question again.

    With `images`, image passages become image parts; `instruction` may use {question};
    `explain` and `several`, when given, replace it for questions asking why or how and
    for questions asking several things.
    """
    messages: list[ChatMessage] = [{"role": "system", "content": system}]
    for example in examples:
        lines = [
            f"Passage [{n}] (from {name}): {text}\n"
            for n, (name, text) in enumerate(example.passages, 1)
        ]
        messages.append(
            {
                "role": "user",
                "content": _user_text(
                    example.question,
                    lines,
                    instruction_for(example.question, instruction, explain, several),
                ),
            }
        )
        messages.append({"role": "assistant", "content": example.answer})
    head = f"Question: {question}\n\nPassages:"
    if not hits:
        context_parts: list[dict[str, Any]] = [{"type": "text", "text": f"{head} (none)\n"}]
    else:
        context_parts = [{"type": "text", "text": f"{head}\n"}]
        for number, hit in enumerate(hits, 1):
            header = passage_header(number, hit)
            part = None
            if images and media is not None and hit.doc.modality in IMAGE_MODALITIES:
                path = media(hit.doc)
                part = image_part(path) if path is not None else None
            if part is not None:
                caption = passage_text(hit, max_passage_chars) if hit.text.strip() else ""
                context_parts.append({"type": "text", "text": f"{header} image: {caption}\n"})
                context_parts.append(part)
            else:
                context_parts.append(
                    {"type": "text", "text": f"{header} {passage_text(hit, max_passage_chars)}\n"}
                )
    tail = instruction_for(question, instruction, explain, several)
    context_parts.append({"type": "text", "text": f"\n{tail}"})
    if any(p["type"] != "text" for p in context_parts):
        content: str | list[dict[str, Any]] = _merge_text(context_parts)
    else:
        content = "".join(p["text"] for p in context_parts)
    messages.append({"role": "user", "content": content})
    return messages


def _user_text(question: str, passage_lines: Sequence[str], tail: str) -> str:
    return f"Question: {question}\n\nPassages:\n{''.join(passage_lines)}\n{tail}"


def _merge_text(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join runs of adjacent text parts so the message holds as few parts as possible."""
    out: list[dict[str, Any]] = []
    for p in parts:
        if p["type"] == "text" and out and out[-1]["type"] == "text":
            out[-1] = {"type": "text", "text": out[-1]["text"] + p["text"]}
        else:
            out.append(p)
    return out
