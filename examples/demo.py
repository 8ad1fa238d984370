"""`make demo`: index the sample corpus, then answer questions with citations."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console

from mmrag.generate.display import print_checked
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.models.text import load_text_encoder
from mmrag.pipeline import DEFAULT_CONFIG, Pipeline

HERE = Path(__file__).resolve().parent
STORE = Path(os.environ.get("MMRAG_DEMO_STORE", HERE.parent / ".mmrag-cache" / "demo-store"))
QUESTIONS = [
    "Who invented the printing press, and when?",
    "How does a derailleur move the chain between sprockets?",
    "Why does sourdough rise without commercial yeast?",
    "“谷雨”这个名字是什么意思？",
]

console = Console()


def main() -> None:
    encoder = load_text_encoder("onnx", model="bge-small-en-v1.5")  # the English default
    with EmbeddedStore(STORE) as store:
        report = Indexer(store, encoder).index_paths([HERE / "corpus"], prune=True)
        console.print(f"[green]indexed[/green] {report.summary()}  (store: {STORE})")
        for e in report.errors:
            console.print(f"[yellow]skipped[/yellow] {e.path}: {e.reason}")
        pipeline = Pipeline.from_config(DEFAULT_CONFIG, store)
        for warning in pipeline.warnings:
            console.print(f"[yellow]warning: {warning}[/yellow]")
        model = getattr(getattr(pipeline.generator, "lm", None), "name", "none")
        console.print(f"generator: {model}; reranker and judge: ms-marco MiniLM cross-encoder")
        for question in QUESTIONS:
            console.rule(f"[bold]{question}")
            started = time.perf_counter()
            answer = pipeline.ask(question)
            console.print(answer.text or "(no generator: the best passages follow)", markup=False)
            print_checked(console, answer, indent="  ")
            if not answer.text:
                for i, hit in enumerate(answer.context, 1):
                    console.print(f"[{i}] {' '.join(hit.text.split())[:300]}", markup=False)
            console.print(f"[dim]{time.perf_counter() - started:.1f} s[/dim]")
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
