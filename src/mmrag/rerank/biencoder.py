"""Dense rescoring: cosine of the query and the whole passage under a text encoder.

A first stage may have found a passage through one chunk, or through an index built
with another model; this rescoring reads the full passage. Passages longer than the
encoder's window are split into overlapping word windows and score their best window
(max-passage), so nothing past the window is silently ignored.
"""

from __future__ import annotations

import numpy as np

from mmrag.errors import ConfigError
from mmrag.models.text import TextEncoder, load_text_encoder
from mmrag.rerank.base import Reranker
from mmrag.types import Hit, Query, StageReport

# Word pieces per whitespace word in English prose run about 1.3; windows of
# 0.7 * window words stay inside the encoder's token window.
_WORDS_PER_TOKEN = 0.7


def word_windows(text: str, size: int, stride: int) -> list[str]:
    """The text itself when it has at most `size` words, else overlapping word windows."""
    words = text.split()
    if len(words) <= size:
        return [text]
    starts = list(range(0, len(words) - size + 1, stride))
    if starts[-1] + size < len(words):
        starts.append(len(words) - size)
    return [" ".join(words[s : s + size]) for s in starts]


class BiEncoderReranker(Reranker):
    """Rescore with any registered text encoder (default: the packaged all-MiniLM-L6-v2)."""

    name = "biencoder"

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        *,
        encoder: str = "sentence-transformers",
        depth: int | None = None,
        batch_size: int = 32,
        window_words: int | None = None,
        text_encoder: TextEncoder | None = None,
    ) -> None:
        super().__init__(depth)
        self.encoder = text_encoder or load_text_encoder(encoder, model=model)
        tokens = self.encoder.max_tokens
        self.window_words = window_words or (int(tokens * _WORDS_PER_TOKEN) if tokens else None)
        if self.window_words is not None and self.window_words < 8:
            raise ConfigError(f"window_words must be at least 8, got {self.window_words}")
        self.batch_size = batch_size

    def passage_scores(self, query: Query, texts: list[str], report: StageReport) -> np.ndarray:
        """Best-window cosine of each text with the query."""
        pieces: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            windows = (
                word_windows(text, self.window_words, max(self.window_words // 2, 1))
                if self.window_words
                else [text]
            )
            pieces.extend(windows)
            owner.extend([i] * len(windows))
        report.extra["windows"] = len(pieces)
        q = self.encoder.encode_queries([query.text])[0]
        sims = self.encoder.encode(pieces, batch_size=self.batch_size) @ q
        scores = np.full(len(texts), -np.inf)
        np.maximum.at(scores, np.asarray(owner), sims.astype(np.float64))
        report.model_calls += 1 + -(-len(pieces) // self.batch_size)
        return scores

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        return self.passage_scores(query, [h.text for h in hits], report)
