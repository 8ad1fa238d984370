"""A reranker's nDCG@10 and cost on TREC DL19 or a BEIR dataset, as `mmrag eval rerank`
and `mmrag eval beir --reranker` run it (their typer faces live in mmrag/cli)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError


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
    from mmrag.eval.rerank import eval_beir, eval_dl19
    from mmrag.rerank import RERANKERS

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
