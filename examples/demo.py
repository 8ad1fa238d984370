"""`make demo`: index the sample corpus, then answer questions with citations."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from mmrag import Query
from mmrag.index.indexer import Indexer
from mmrag.index.store import EmbeddedStore
from mmrag.models.text import load_text_encoder
from mmrag.pipeline import DEFAULT_CONFIG, Pipeline
from mmrag.retrieve import RETRIEVERS

HERE = Path(__file__).resolve().parent
STORE = Path(os.environ.get("MMRAG_DEMO_STORE", HERE.parent / ".mmrag-cache" / "demo-store"))
QUESTIONS = [
    "How does a derailleur move the chain between sprockets?",
    "Why does sourdough rise without commercial yeast?",
    "谷雨是第几个节气？",
]

console = Console()


def main() -> None:
    encoder = load_text_encoder("sentence-transformers")
    with EmbeddedStore(STORE) as store:
        report = Indexer(store, encoder).index_paths([HERE / "corpus"], prune=True)
        console.print(f"[green]indexed[/green] {report.summary()}  (store: {STORE})")
        for e in report.errors:
            console.print(f"[yellow]skipped[/yellow] {e.path}: {e.reason}")
        retriever = RETRIEVERS.create("hybrid", store=store)
        for question in QUESTIONS:
            ranked = retriever.retrieve(Query(question), k=3)
            console.rule(f"[bold]{question}")
            for i, hit in enumerate(ranked.hits, 1):
                text = " ".join(hit.doc.text.split())
                console.print(f"[{i}] {text[:400]}{'…' if len(text) > 400 else ''}")
                console.print(f"    [dim]— {hit.doc.citation()}  score {hit.score:.4f}[/dim]")
        console.rule("[bold]An answer written by the local model (SmolLM2-135M), with citations")
        pipeline = Pipeline.from_config(DEFAULT_CONFIG, store)
        answer = pipeline.ask("Who invented the printing press, and when?")
        console.print(answer.text)
        for c in answer.citations:
            console.print(f"    [dim][{c.number}] {c.doc.citation()}[/dim]")
    console.print(
        "\nTry the CLI on the same store:\n"
        f"  .venv/bin/mmrag search 'printing press' --store {STORE}\n"
        f"  .venv/bin/mmrag ask 'Who was Ada Lovelace?' --store {STORE}\n"
        f"  .venv/bin/mmrag info --store {STORE}\n"
        "\nServe it over HTTP, with a web page to search, ask and upload:\n"
        f"  .venv/bin/mmrag serve --store {STORE} --port 8000\n"
        "  then open http://localhost:8000/ (API docs at http://localhost:8000/docs)"
    )


if __name__ == "__main__":
    main()
