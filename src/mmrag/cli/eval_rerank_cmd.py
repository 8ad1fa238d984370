"""`mmrag eval rerank`: a face over eval/rerank_run.py's run_rerank_eval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.friendly import plain_error
from mmrag.cli.results import write_json_file
from mmrag.errors import MMRagError
from mmrag.eval.rerank_run import RerankTask
from mmrag.registry import parse_params


def eval_rerank(
    task: Annotated[RerankTask, typer.Argument(help="trec-dl19 or beir.")],
    directory: Annotated[Path, typer.Argument(help="The dataset folder.")],
    reranker: Annotated[str, typer.Option(help="A reranker name (see RERANKERS).")] = "default",
    param: Annotated[
        list[str] | None, typer.Option(help="Reranker parameter key=value (repeatable).")
    ] = None,
    depth: Annotated[int, typer.Option(help="Candidates reranked per query.")] = 100,
    queries: Annotated[int | None, typer.Option(help="Only the first N queries.")] = None,
    retriever: Annotated[str, typer.Option(help="First stage for beir.")] = "hybrid",
    out: Annotated[
        Path | None, typer.Option("--json", help="Write the metrics as JSON to this file.")
    ] = None,
) -> None:
    """nDCG@10, ms per query, model calls and tokens per query of a reranker."""
    from mmrag.eval.rerank_run import run_rerank_eval

    try:
        result = run_rerank_eval(
            task, directory, reranker, parse_params(param or []), depth, queries, retriever
        )
    except MMRagError as exc:
        raise plain_error(exc) from exc
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if out is not None:
        write_json_file(out, text)
    typer.echo(text)


def register(eval_app: typer.Typer) -> None:
    """Add `rerank` to the `mmrag eval` group."""
    eval_app.command("rerank")(eval_rerank)
