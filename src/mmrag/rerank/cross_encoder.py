"""Cross-encoder reranking (monoBERT style): the query and a passage read together.

Any `AutoModelForSequenceClassification` checkpoint, including sentence-transformers
`CrossEncoder` folders, by hub id or local path. Pairs are truncated longest-first to
the model's window, as sentence-transformers does; how many were cut is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.models.resolve import loading, resolve_model
from mmrag.registry import require
from mmrag.rerank.base import Reranker
from mmrag.rerank.batching import length_sorted_batches
from mmrag.types import Hit, Query, StageReport


@lru_cache(maxsize=2)
def load_sequence_classifier(path: str, device: str) -> tuple[Any, Any]:
    require("torch", "torch")
    transformers = require("transformers", "torch")

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path)
    model.eval().to(device)
    return model, tokenizer


def relevance_from_logits(logits: Any) -> Any:
    """One relevance score per row: the logit of a 1-label head, or for a 2-label head
    (not relevant, relevant) the log-odds of relevant."""
    if logits.shape[-1] == 1:
        return logits[:, 0]
    if logits.shape[-1] == 2:
        return logits[:, 1] - logits[:, 0]
    raise ConfigError(f"a relevance head has 1 or 2 labels, this one has {logits.shape[-1]}")


class CrossEncoderReranker(Reranker):
    """Scores each (query, passage) pair with a sequence-classification model.

    The score is the model's raw relevance logit (sentence-transformers applies a
    sigmoid on top, which does not change the order). `scripts`: the writing systems
    the model reads (e.g. ["LATIN"] for an English model; None: any).
    """

    name = "cross-encoder"

    def __init__(
        self,
        model: str | None = None,
        *,
        depth: int | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        device: str = "cpu",
        scripts: Sequence[str] | None = None,
    ) -> None:
        super().__init__(depth, scripts=scripts)
        if not model:
            raise ConfigError(
                "cross-encoder needs model=<hub id or path>, e.g. "
                "cross-encoder/ms-marco-MiniLM-L6-v2 (no cross-encoder is packaged)"
            )
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.model_name = model
        self.batch_size = batch_size
        path = resolve_model(model)
        with loading(model, path):
            self.model, self.tokenizer = load_sequence_classifier(path, device)
        window = min(
            int(self.tokenizer.model_max_length),
            int(getattr(self.model.config, "max_position_embeddings", 512)),
        )
        self.max_length = min(max_length, window) if max_length else window
        if self.max_length < 8:
            raise ConfigError(f"max_length {self.max_length} is too small for a query and passage")

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        import torch

        texts = [h.text for h in hits]
        scores = np.full(len(texts), np.nan)
        full = self.tokenizer([query.text] * len(texts), texts, truncation=False)["input_ids"]
        report.extra["truncated"] = sum(len(ids) > self.max_length for ids in full)
        for batch in length_sorted_batches(texts, self.batch_size):
            inputs = self.tokenizer(
                [query.text] * len(batch),
                [texts[i] for i in batch],
                truncation=True,  # longest first: the passage, unless the query is longer
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.model.device)
            with torch.inference_mode():
                logits = self.model(**inputs).logits.float()
            scores[batch] = relevance_from_logits(logits).cpu().numpy()
            report.model_calls += 1
            report.tokens += int(inputs["attention_mask"].sum())
        return scores
