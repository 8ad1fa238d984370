"""Seq2seq relevance (monoT5 style): score = log P("true") at the first decoder step.

The model reads "Query: q Document: d Relevant:" and the score is the log-softmax of
the "true" logit against the "false" logit (Nogueira et al., 2020). The passage is cut
(by tokens) so that the template's end, which carries the question to the model,
always fits in the window.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.models.resolve import loading, resolve_model
from mmrag.registry import require
from mmrag.rerank.base import Reranker
from mmrag.rerank.batching import length_sorted_batches
from mmrag.types import Hit, Query, StageReport

MONOT5_TEMPLATE = "Query: {query} Document: {document} Relevant:"


@lru_cache(maxsize=2)
def load_seq2seq(path: str, device: str) -> tuple[Any, Any]:
    require("torch", "torch")
    transformers = require("transformers", "torch")

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(path)
    model.eval().to(device)
    return model, tokenizer


def single_token_id(tokenizer: Any, word: str) -> int:
    ids = tokenizer.encode(word, add_special_tokens=False)
    if len(ids) != 1:
        raise ConfigError(f"{word!r} is {len(ids)} tokens for this tokenizer; need exactly one")
    return int(ids[0])


class MonoT5Reranker(Reranker):
    """A T5-style relevance model by hub id or path (e.g. castorini/monot5-base-msmarco)."""

    name = "monot5"

    def __init__(
        self,
        model: str | None = None,
        *,
        depth: int | None = None,
        batch_size: int = 16,
        max_length: int = 512,
        template: str = MONOT5_TEMPLATE,
        true_token: str = "true",
        false_token: str = "false",
        device: str = "cpu",
    ) -> None:
        super().__init__(depth)
        if not model:
            raise ConfigError("monot5 needs model=<hub id or path> (no T5 model is packaged)")
        if "{query}" not in template or "{document}" not in template:
            raise ConfigError("the template needs {query} and {document}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.model_name = model
        self.batch_size = batch_size
        self.template = template
        path = resolve_model(model)
        with loading(model, path):
            self.model, self.tokenizer = load_seq2seq(path, device)
        self.max_length = max_length
        self.true_id = single_token_id(self.tokenizer, true_token)
        self.false_id = single_token_id(self.tokenizer, false_token)
        start = getattr(self.model.config, "decoder_start_token_id", None)
        if start is None and self.model.generation_config is not None:
            start = self.model.generation_config.decoder_start_token_id
        if start is None:
            raise ConfigError(f"model {model!r} declares no decoder_start_token_id")
        self.decoder_start = int(start)

    def _fit(self, query: str, document: str) -> tuple[str, bool]:
        """The prompt, with the document cut so the whole prompt fits in max_length."""
        prompt = self.template.format(query=query, document=document)
        if len(self.tokenizer(prompt)["input_ids"]) <= self.max_length:
            return prompt, False
        frame = len(self.tokenizer(self.template.format(query=query, document=""))["input_ids"])
        budget = max(self.max_length - frame - 2, 0)  # 2: word boundary slack at the cut
        ids = self.tokenizer.encode(document, add_special_tokens=False)[:budget]
        cut = self.tokenizer.decode(ids, skip_special_tokens=True)
        return self.template.format(query=query, document=cut), True

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        import torch

        prompts, truncated = [], 0
        for h in hits:
            prompt, cut = self._fit(query.text, h.text)
            prompts.append(prompt)
            truncated += cut
        report.extra["truncated"] = truncated
        scores = np.full(len(prompts), np.nan)
        for batch in length_sorted_batches(prompts, self.batch_size):
            inputs = self.tokenizer(
                [prompts[i] for i in batch],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.model.device)
            start = torch.full((len(batch), 1), self.decoder_start, device=self.model.device)
            with torch.inference_mode():
                logits = self.model(**inputs, decoder_input_ids=start).logits[:, 0, :].float()
            pair = logits[:, [self.false_id, self.true_id]]
            scores[batch] = torch.log_softmax(pair, dim=-1)[:, 1].cpu().numpy()
            report.model_calls += 1
            report.tokens += int(inputs["attention_mask"].sum()) + len(batch)
        return scores
