"""The reranker contract on bad input: empty lists, duplicates, depth, k, failures."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.errors import ConfigError
from mmrag.rerank import RERANKERS
from mmrag.rerank.base import apply_scores, scores_from_order, unique_hits
from mmrag.rerank.fusion import zscore
from mmrag.types import Document, Hit, Query, Ranked
from tests.rerank.conftest import dl19_ranked

QID = "264014"


def _hits(ids: list[str]) -> list[Hit]:
    return [Hit(Document(id=i, text=f"text {i}"), score=float(-n)) for n, i in enumerate(ids)]


def test_unscored_candidates_follow_in_input_order() -> None:
    hits = _hits(["a", "b", "c", "d", "e"])
    out = apply_scores(hits, np.array([0.1, np.nan, 0.9, np.nan, 0.5]), "x")
    assert [h.doc.id for h in out] == ["c", "e", "a", "b", "d"]
    scores = [h.score for h in out]
    assert scores == sorted(scores, reverse=True)
    assert "x" in out[0].scores and "x" not in out[3].scores


def test_scores_from_order_and_duplicates() -> None:
    assert scores_from_order([2, 0, 1], 3).tolist() == [2.0, 1.0, 3.0]
    unique, dropped = unique_hits(_hits(["a", "b", "a", "c", "b"]))
    assert [h.doc.id for h in unique] == ["a", "b", "c"] and dropped == 2


def test_zscore_ignores_unscored_and_flat_lists() -> None:
    z = zscore(np.array([1.0, np.nan, 3.0]))
    assert z.tolist() == [-1.0, 0.0, 1.0]
    assert zscore(np.array([2.0, 2.0])).tolist() == [0.0, 0.0]


def test_first_stage_reranker_on_empty_duplicates_depth_and_k() -> None:
    reranker = RERANKERS.create("first-stage")
    empty = reranker.rerank(Ranked(Query(text="q"), []))
    assert empty.hits == [] and empty.reports[-1].n_in == 0

    ranked = Ranked(Query(text="q"), _hits(["a", "b", "a", "c"]))
    out = reranker.rerank(ranked, k=2)
    assert out.ids() == ["a", "b"]
    assert out.reports[-1].extra["duplicates_dropped"] == 1
    with pytest.raises(ConfigError):
        reranker.rerank(ranked, k=0)
    with pytest.raises(ConfigError):
        RERANKERS.create("first-stage", depth=0)


def test_biencoder_matches_sentence_transformers_and_respects_depth(dl19) -> None:
    from sentence_transformers import SentenceTransformer

    from mmrag.models.resolve import resolve_model

    ranked = dl19_ranked(dl19, QID, depth=20)
    out = RERANKERS.create("biencoder", depth=10).rerank(ranked)
    st = SentenceTransformer(resolve_model("all-MiniLM-L6-v2"), device="cpu")
    head = ranked.hits[:10]
    q = st.encode([ranked.query.text], normalize_embeddings=True)[0]
    d = st.encode([h.text for h in head], normalize_embeddings=True)
    expected = {h.doc.id: float(v) for h, v in zip(head, d @ q, strict=True)}
    ours = {h.doc.id: h.score for h in out.hits[:10]}
    assert set(ours) == set(expected)
    for doc_id, value in expected.items():
        assert ours[doc_id] == pytest.approx(value, abs=1e-5)
    # below the depth, the input order is kept, scored under the head
    assert out.ids()[10:] == ranked.ids()[10:]
    assert out.hits[10].score < out.hits[9].score


def test_biencoder_scores_long_passages_by_their_best_window(dl19) -> None:
    from sentence_transformers import SentenceTransformer

    from mmrag.models.resolve import resolve_model

    reranker = RERANKERS.create("biencoder")
    ranked = dl19_ranked(dl19, QID, depth=3)
    relevant = max(ranked.hits, key=lambda h: dl19.qrels[QID].get(h.doc.id, 0))
    other = dl19_ranked(dl19, "1037798", depth=6).hits
    filler = " ".join(" ".join(h.text for h in other).split()[:300])
    # the answer after 300 words of unrelated text: past MiniLM's 256-token window
    buried = Hit(Document(id="buried", text=f"{filler} {relevant.text}"), score=0.0)
    alone = reranker.rerank(Ranked(ranked.query, [relevant])).hits[0].score
    out = reranker.rerank(Ranked(ranked.query, [buried]))
    assert out.reports[-1].extra["windows"] > 1
    st = SentenceTransformer(resolve_model("all-MiniLM-L6-v2"), device="cpu")
    q, d = st.encode([ranked.query.text, buried.text], normalize_embeddings=True)
    truncated = float(q @ d)  # what plain encoding sees: the filler only
    # the window holding the answer scores near the answer alone, far above the filler
    assert out.hits[0].score > truncated + 0.2
    assert alone - out.hits[0].score < alone - truncated
