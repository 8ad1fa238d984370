"""Late-interaction rescoring: ColBERT MaxSim over token embeddings.

score(q, d) = sum over query tokens of the best cosine with any passage token
(Khattab & Zaharia, 2020). Token embeddings come from a ColBERT checkpoint by id or
path (colbert-ir layout: a BERT encoder plus a `linear` projection, query and document
marker tokens, queries padded with [MASK] to a fixed length), or, offline, from the
last hidden states of the packaged all-MiniLM-L6-v2.
"""

from __future__ import annotations

import string
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.models.resolve import loading, resolve_model
from mmrag.registry import Registry, require
from mmrag.rerank.base import Reranker
from mmrag.rerank.batching import length_sorted_batches
from mmrag.types import Hit, Query, StageReport


def maxsim_scores(query: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim of one query (q, dim) against each document (n_i, dim); NaN for an empty one."""
    return np.asarray(
        [float((d @ query.T).max(axis=0).sum()) if len(d) else np.nan for d in docs],
        dtype=np.float64,
    )


@lru_cache(maxsize=2)
def _load_encoder(path: str, device: str) -> tuple[Any, Any]:
    require("torch", "torch")
    transformers = require("transformers", "torch")

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path)
    model.eval().to(device)
    return model, tokenizer


class TokenEncoder(ABC):
    """Texts -> one (tokens, dim) float32 matrix of unit rows per text."""

    name: str
    max_length: int

    @abstractmethod
    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]: ...

    @abstractmethod
    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> list[np.ndarray]: ...

    def count_truncated(self, texts: Sequence[str]) -> int:
        lengths = self.tokenizer(list(texts), truncation=False)["input_ids"]  # type: ignore[attr-defined]
        return sum(len(ids) > self.max_length for ids in lengths)


def _unit_rows(hidden: Any, keep: Any) -> list[np.ndarray]:
    import torch

    hidden = torch.nn.functional.normalize(hidden.float(), dim=-1).cpu().numpy()
    keep = keep.bool().cpu().numpy()
    return [np.ascontiguousarray(h[m]) for h, m in zip(hidden, keep, strict=True)]


class HiddenStateTokenEncoder(TokenEncoder):
    """Last hidden states of any transformers encoder, padding dropped (the offline fallback)."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", device: str = "cpu") -> None:
        self.name = model
        path = resolve_model(model)
        with loading(model, path):
            self.model, self.tokenizer = _load_encoder(path, device)
        self.max_length = min(int(self.tokenizer.model_max_length), 512)

    def _run(self, texts: Sequence[str], batch_size: int) -> list[np.ndarray]:
        import torch

        items = list(texts)
        out: list[np.ndarray] = [np.zeros((0, 1), np.float32)] * len(items)
        for batch in length_sorted_batches(items, batch_size):
            enc = self.tokenizer(
                [items[i] for i in batch],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.model.device)
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            for i, rows in zip(batch, _unit_rows(hidden, enc["attention_mask"]), strict=True):
                out[i] = rows
        return out

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self._run(texts, 32)

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> list[np.ndarray]:
        return self._run(texts, batch_size)


def _projection(name: str, path: str) -> Any:
    """The `linear.weight` of a colbert-ir checkpoint (safetensors or PyTorch file)."""
    import torch
    from transformers.utils import cached_file

    for filename in ("model.safetensors", "pytorch_model.bin"):
        file = cached_file(path, filename, _raise_exceptions_for_missing_entries=False)
        if file is None:
            continue
        if filename.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(file, framework="pt") as f:
                if "linear.weight" in f.keys():  # noqa: SIM118 - safe_open has no __contains__
                    return f.get_tensor("linear.weight")
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
            if "linear.weight" in state:
                return state["linear.weight"]
    raise ConfigError(f"{name!r} is not a ColBERT checkpoint: no 'linear.weight' projection")


class ColBERTTokenEncoder(TokenEncoder):
    """A colbert-ir style checkpoint (e.g. colbert-ir/colbertv2.0) by id or path."""

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        query_length: int = 32,
        doc_length: int = 180,
        query_marker: str = "[unused0]",
        doc_marker: str = "[unused1]",
    ) -> None:
        import torch

        self.name = model
        path = resolve_model(model)
        with loading(model, path):
            self.model, self.tokenizer = _load_encoder(path, device)
            weight = _projection(model, path)
        hidden = self.model.config.hidden_size
        if weight.shape[1] != hidden:
            raise ConfigError(f"{model!r}: projection {tuple(weight.shape)} does not fit {hidden}")
        self.linear = torch.nn.Linear(hidden, weight.shape[0], bias=False)
        self.linear.weight.data.copy_(weight)
        self.linear.to(device)
        self.query_length, self.max_length = query_length, doc_length
        vocab = self.tokenizer.get_vocab()
        for marker in (query_marker, doc_marker):
            if marker not in vocab:
                raise ConfigError(f"{model!r}: marker token {marker!r} is not in the vocabulary")
        self.q_marker, self.d_marker = vocab[query_marker], vocab[doc_marker]
        self.skip = {
            i
            for p in string.punctuation
            for i in self.tokenizer.encode(p, add_special_tokens=False)
        }

    def _encode(self, texts: list[str], marker: int, length: int, query: bool) -> list[np.ndarray]:
        import torch

        enc = self.tokenizer(
            texts, truncation=True, max_length=length - 1, padding="longest", return_tensors="pt"
        )
        ids, mask = enc["input_ids"], enc["attention_mask"]
        # The marker goes right after [CLS], as ColBERT's tokenizers insert it.
        ids = torch.cat([ids[:, :1], torch.full_like(ids[:, :1], marker), ids[:, 1:]], dim=1)
        mask = torch.cat([mask[:, :1], torch.ones_like(mask[:, :1]), mask[:, 1:]], dim=1)
        if query:
            # Query augmentation: pad with [MASK] to the full query length; the masks
            # are not attended to but their outputs take part in MaxSim.
            pad = length - ids.shape[1]
            if pad > 0:
                ids = torch.cat(
                    [ids, torch.full((len(texts), pad), self.tokenizer.pad_token_id)], 1
                )
                mask = torch.cat([mask, torch.zeros((len(texts), pad), dtype=mask.dtype)], 1)
            keep = torch.ones_like(ids)
            ids = torch.where(ids == self.tokenizer.pad_token_id, self.tokenizer.mask_token_id, ids)
        else:
            skip = torch.tensor(sorted(self.skip), dtype=ids.dtype)
            keep = mask.clone() * ~torch.isin(ids, skip)
        device = self.model.device
        with torch.inference_mode():
            hidden = self.model(input_ids=ids.to(device), attention_mask=mask.to(device))
            projected = self.linear(hidden.last_hidden_state)
        return _unit_rows(projected, keep)

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self._encode(list(texts), self.q_marker, self.query_length, True)

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> list[np.ndarray]:
        items = list(texts)
        out: list[np.ndarray] = [np.zeros((0, 1), np.float32)] * len(items)
        for batch in length_sorted_batches(items, batch_size):
            rows = self._encode([items[i] for i in batch], self.d_marker, self.max_length, False)
            for i, r in zip(batch, rows, strict=True):
                out[i] = r
        return out


TOKEN_ENCODERS: Registry[TokenEncoder] = Registry(
    "token encoder",
    {
        "hidden-states": "mmrag.rerank.maxsim:HiddenStateTokenEncoder",
        "colbert": "mmrag.rerank.maxsim:ColBERTTokenEncoder",
    },
)


class MaxSimReranker(Reranker):
    """Rescore by MaxSim. `kind="colbert"` with `model=<checkpoint>`; the default is the
    packaged MiniLM's hidden states, which works offline."""

    name = "maxsim"

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        *,
        kind: str = "hidden-states",
        depth: int | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        token_encoder: TokenEncoder | None = None,
    ) -> None:
        super().__init__(depth)
        self.encoder = token_encoder or TOKEN_ENCODERS.create(kind, model=model, device=device)
        self.batch_size = batch_size

    def passage_scores(self, query: Query, texts: list[str], report: StageReport) -> np.ndarray:
        q = self.encoder.encode_queries([query.text])[0]
        docs = self.encoder.encode_documents(texts, self.batch_size)
        report.extra["truncated"] = self.encoder.count_truncated(texts)
        report.model_calls += 1 + -(-len(texts) // self.batch_size)
        report.tokens += len(q) + sum(len(d) for d in docs)
        return maxsim_scores(q, docs)

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        return self.passage_scores(query, [h.text for h in hits], report)
