"""`mmrag eval rerank`: a reranker's nDCG@10 and cost on TREC DL19 or a BEIR dataset."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.errors import ConfigError, MMRagError
from mmrag.registry import parse_params


class RerankTask(StrEnum):
    trec_dl19 = "trec-dl19"
    beir = "beir"


def run_rerank_eval(
    task: str,
    directory: Path,
    reranker: str,
    params: dict[str, Any],
    depth: int = 100,
    queries: int | None = None,
    retriever: str = "hybrid",
    split: str = "test",
    encoder: str = "sentence-transformers",
    model: str | None = None,
) -> dict[str, Any]:
    """The reusable body of `mmrag eval rerank` and `mmrag eval beir --reranker`: build
    the reranker by name and score it over the first stage's top `depth`."""
    from mmrag.rerank import RERANKERS
    from mmrag.rerank.evaluate import eval_beir, eval_dl19

    if depth < 1 or (queries is not None and queries < 1):
        raise ConfigError("depth and queries must be positive")
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a dataset folder")
    reranker_model = RERANKERS.create(reranker, **params)
    if task == RerankTask.trec_dl19:
        result = eval_dl19(str(directory), reranker_model, depth=depth, limit=queries)
    else:
        cache = Path(os.environ.get("MMRAG_CACHE", ".mmrag-cache")) / "eval-stores"
        result = eval_beir(
            str(directory),
            reranker_model,
            str(cache),
            retriever=retriever,
            depth=depth,
            limit=queries,
            split=split,
            encoder=encoder,
            model=model,
        )
    result["reranker"] = reranker
    result["params"] = params
    return result


def register(eval_app: typer.Typer) -> None:
    """Add `rerank` to the `mmrag eval` group."""

    @eval_app.command("rerank")
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
        try:
            result = run_rerank_eval(
                task, directory, reranker, parse_params(param or []), depth, queries, retriever
            )
        except MMRagError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        text = json.dumps(result, indent=2, ensure_ascii=False)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n")
        typer.echo(text)
