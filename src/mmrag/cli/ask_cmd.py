"""`mmrag ask`: an answer with citations through the whole pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.console import console
from mmrag.cli.display import print_context
from mmrag.cli.query_args import build_query
from mmrag.cli.store_location import StoreOpt, open_store_at


def ask(
    question: Annotated[str, typer.Argument(help="A question about the indexed material.")],
    store: StoreOpt = None,
    k: Annotated[
        int, typer.Option("--k", "-k", min=1, max=50, help="How many passages to read.")
    ] = 3,
    retriever: Annotated[str | None, typer.Option(help="Retriever name.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Pipeline TOML (see examples/pipeline.toml).")
    ] = None,
    generate: Annotated[
        bool, typer.Option(help="Write an answer with the generator (off: passages only).")
    ] = True,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Longest answer, in tokens.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the answer, citations and stages as JSON.")
    ] = False,
) -> None:
    """Answer through the pipeline (retrieve -> rerank -> refine -> generate) with citations."""
    import copy

    from mmrag.generate import Answer
    from mmrag.pipeline import DEFAULT_CONFIG, Pipeline, StageFailed

    with open_store_at(store, read_only=True) as st:
        if config is not None:
            pipeline = Pipeline.from_toml(config, st)
        else:
            settings = copy.deepcopy(DEFAULT_CONFIG)
            # retrieve wide, then the reranker keeps the k passages the generator reads
            settings["rerank"]["k"] = k
            settings["retrieve"]["k"] = max(k, settings["retrieve"]["k"])
            if retriever:
                settings["retrieve"]["name"] = retriever
            if not generate:
                del settings["generate"]
            pipeline = Pipeline.from_config(settings, st)
        for warning in pipeline.warnings:
            console.print(f"[yellow]warning: {warning}[/yellow]")
        answer: Answer | None = None
        try:
            for item in pipeline.stream(build_query(question, None), max_tokens):
                if isinstance(item, Answer):
                    answer = item
                elif isinstance(item, str):
                    if not as_json:
                        console.print(item, end="", markup=False, highlight=False)
                elif not as_json:
                    print_context(question, item)
        except StageFailed as exc:
            console.print(f"[red]{exc}[/red]; the passages found:")
            print_context(question, exc.ranked)
            raise typer.Exit(1) from None
    if answer is None:
        return
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False))
        return
    from mmrag.generate.display import print_checked

    if answer.text:
        console.print()
    print_checked(console, answer)
    if answer.dropped:
        console.print(f"[yellow]dropped citations naming no passage: {answer.dropped}[/yellow]")
    timings = ", ".join(f"{s.stage} {s.seconds * 1000:.0f} ms" for s in answer.stages)
    console.print(f"[dim]{timings}[/dim]")
