"""How an answer's grounding reads as plain text: the CLI and the OpenAI-compatible reply."""

from __future__ import annotations

from typing import Any

from mmrag.generate.base import Answer, SentenceSupport

SUPPORTED = "✓"
UNSUPPORTED = "✗"


def sentence_line(s: SentenceSupport) -> str:
    if s.supported:
        how = ", citation inferred" if s.inferred else ""
        return f"{SUPPORTED} supported{how}: {s.text}"
    if not s.citations:
        return f"{UNSUPPORTED} unsupported, cites no passage: {s.text}"
    return f"{UNSUPPORTED} unsupported by the passage it cites: {s.text}"


def grounding_lines(answer: Answer) -> list[str]:
    """One line per checked sentence; nothing when no judge ran."""
    if not answer.sentences or all(s.supported is None for s in answer.sentences):
        return []
    return [sentence_line(s) for s in answer.sentences]


def closest_passages_line(answer: Answer) -> str:
    """For a not-found answer: where the nearest material is, so the reader can look."""
    names = [f"[{i}] {h.doc.citation()}" for i, h in enumerate(answer.context[:3], 1)]
    return "Closest passages: " + "; ".join(names) if names else ""


def print_checked(console: Any, answer: Answer, indent: str = "") -> None:
    """What follows an answer on a rich console: where the nearest material is (not
    found), each sentence's check, then the cited sources."""
    from rich.markup import escape

    if answer.not_found:
        console.print(f"[dim]{escape(closest_passages_line(answer))}[/dim]")
    for line in grounding_lines(answer):
        style = "green" if line.startswith(SUPPORTED) else "yellow"
        console.print(f"{indent}[{style}]{escape(line)}[/{style}]")
    for c in answer.citations:
        how = " (citation inferred)" if c.inferred else ""
        console.print(f"{indent}[dim]\\[{c.number}] {escape(c.doc.citation())}{how}[/dim]")
