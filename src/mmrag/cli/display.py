"""How passages look in the terminal."""

from __future__ import annotations

from typing import Any

from mmrag.cli.console import console


def describe(doc: Any, width: int = 300) -> str:
    """A passage's text; media documents are marked with their modality."""
    if str(doc.modality) == "text":
        return snippet(doc.text, width)
    label = f"[{doc.modality}]"
    return f"{label} {snippet(doc.text, width)}" if doc.text.strip() else label


def snippet(text: str, width: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_context(question: str, ranked: Any) -> None:
    """The passages an answer reads, numbered as its citations number them."""
    if not ranked.hits:
        console.print("No passage in the store matches this question.")
        return
    console.print(f"[bold]{question}[/bold]\n")
    for i, h in enumerate(ranked.hits, 1):
        console.print(f"[{i}] {describe(h.doc, 600)}\n    [dim]— {h.doc.citation()}[/dim]\n")
