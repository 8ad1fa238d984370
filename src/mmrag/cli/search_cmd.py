"""`mmrag search`: ranked passages for a text or image query."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mmrag.cli.console import console
from mmrag.cli.display import describe
from mmrag.cli.query_args import build_query
from mmrag.cli.store_location import StoreOpt, open_store_at


def search(
    query: Annotated[str, typer.Argument(help="What to look for (may be '' with --image).")],
    store: StoreOpt = None,
    image: Annotated[
        Path | None, typer.Option(help="Search by this image (image->image, image->text).")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="How many results.")] = 10,
    retriever: Annotated[
        str | None,
        typer.Option(
            help="bm25, tfidf, dense or hybrid (default: hybrid if the store has vectors)."
        ),
    ] = None,
    filters: Annotated[
        str | None, typer.Option("--filter", help="Metadata filter: JSON or key=value,key=value.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of a table.")
    ] = False,
) -> None:
    """Search the store and print ranked passages."""
    with open_store_at(store, read_only=True) as st:
        ranked = store_retriever(st, retriever).retrieve(build_query(query, filters, image), k)
    if as_json:  # JSON lines, for scripts
        for h in ranked.hits:
            record = {
                "id": h.doc.id,
                "score": h.score,
                "citation": h.doc.citation(),
                "text": h.doc.text,
            }
            typer.echo(json.dumps(record, ensure_ascii=False))
        return
    table = Table(show_lines=True)
    for col in ("#", "score", "source", "passage"):
        table.add_column(col)
    for i, h in enumerate(ranked.hits, 1):
        table.add_row(str(i), f"{h.score:.3f}", h.doc.citation(), describe(h.doc))
    console.print(table)


def store_retriever(st: Any, name: str | None) -> Any:
    """The named retriever, else the richest one the store's fields support."""
    from mmrag.retrieve import RETRIEVERS

    if name is None:
        fields = st.fields()
        name = "multimodal" if "image" in fields else "hybrid" if "text" in fields else "bm25"
    return RETRIEVERS.create(name, store=st)
