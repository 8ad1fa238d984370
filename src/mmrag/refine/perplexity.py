"""Batched token log-probabilities from a small causal LM, the signal token pruning runs on.

A "sequence" is a list of token-id segments scored as one text (for example
[passage, question] or [question, passage]); the scorer returns, per segment, log p of
each token given everything before it. Sequences are sorted by length and packed into
padded batches of at most `batch_tokens`, so the model runs a few large forward passes
instead of one per passage.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from mmrag.models.causal_lm import DEFAULT_LM, CausalLM, load_causal_lm


@dataclass(frozen=True, slots=True)
class Encoded:
    """A text's token ids and each token's character span in that text."""

    ids: np.ndarray  # (n,) int64
    offsets: np.ndarray  # (n, 2) int64

    def __len__(self) -> int:
        return len(self.ids)


class PerplexityScorer:
    """Scores tokens with a causal LM (packaged SmolLM2-135M by default, or any id/path)."""

    def __init__(
        self,
        model: str = DEFAULT_LM,
        batch_tokens: int = 4096,
        window: int | None = None,
        dtype: str = "float32",
    ) -> None:
        if batch_tokens < 64:
            raise ValueError("batch_tokens must be at least 64")
        self.model_name = model
        self.batch_tokens = batch_tokens
        self._window = window
        self.dtype = dtype
        self.forward_calls = 0

    @cached_property
    def lm(self) -> CausalLM:
        return load_causal_lm(self.model_name, self.dtype)

    @property
    def tokenizer(self) -> Any:
        return self.lm.tokenizer

    @cached_property
    def window(self) -> int:
        """Longest sequence scored in one piece: the model's context, or less if configured."""
        limit = int(getattr(self.lm.model.config, "max_position_embeddings", 2048) or 2048)
        return min(limit, self._window) if self._window else limit

    @cached_property
    def _start_id(self) -> int:
        # A document-start token gives the first real token a context to be scored in.
        tok = self.tokenizer
        for candidate in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id):
            if candidate is not None:
                return int(candidate)
        return 0

    def encode(self, texts: list[str]) -> list[Encoded]:
        """Token ids and character offsets for each text, in one tokenizer call."""
        if not texts:
            return []
        batch = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        return [
            Encoded(
                np.asarray(ids, dtype=np.int64),
                np.asarray(offsets, dtype=np.int64).reshape(-1, 2),
            )
            for ids, offsets in zip(batch["input_ids"], batch["offset_mapping"], strict=True)
        ]

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Sequence indices grouped longest-first so each padded batch holds <= batch_tokens."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        for i in order:
            if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= self.batch_tokens:
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches

    def logprobs(self, sequences: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        """For each sequence of id segments: per segment, log p(token | all earlier tokens)."""
        import torch

        full = [np.concatenate([[self._start_id], *segments]) for segments in sequences]
        lengths = [len(f) for f in full]
        too_long = [n for n in lengths if n > self.window + 1]
        if too_long:
            raise ValueError(
                f"a sequence of {max(too_long) - 1} tokens exceeds the LM window ({self.window})"
            )
        token_lp: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(full)
        model = self.lm.model
        pad = int(self.tokenizer.pad_token_id or 0)
        for batch in self._batches(lengths):
            width = lengths[batch[0]]
            ids = np.full((len(batch), width), pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = full[i]
                mask[row, : lengths[i]] = 1
            input_ids = torch.from_numpy(ids)
            with torch.inference_mode():
                logits = model(input_ids=input_ids, attention_mask=torch.from_numpy(mask)).logits
                logits = logits[:, :-1].float()
                target = input_ids[:, 1:].unsqueeze(-1)
                lp = (logits.gather(-1, target).squeeze(-1) - torch.logsumexp(logits, -1)).numpy()
            self.forward_calls += 1
            for row, i in enumerate(batch):
                token_lp[i] = lp[row, : lengths[i] - 1]
        out: list[list[np.ndarray]] = []
        for segments, lp in zip(sequences, token_lp, strict=True):
            bounds = np.cumsum([0] + [len(s) for s in segments])
            out.append([lp[bounds[j] : bounds[j + 1]] for j in range(len(segments))])
        return out
