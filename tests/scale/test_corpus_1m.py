"""The benchmark corpus builder is deterministic and looks like the corpora it samples."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import corpus_1m  # noqa: E402 - a script folder, not a package

pytestmark = pytest.mark.skipif(
    not (corpus_1m.DATA / "scifact" / "corpus.jsonl").exists(), reason="shared corpora absent"
)
N = 3_000


@pytest.fixture(scope="module")
def built() -> tuple[corpus_1m.Corpus, corpus_1m.Corpus]:
    # cache=None: build from scratch both times, so the cache cannot hide a difference
    return corpus_1m.build(N, cache=None), corpus_1m.build(N, cache=None)


def test_two_builds_are_identical(built: tuple[corpus_1m.Corpus, corpus_1m.Corpus]) -> None:
    a, b = built
    assert len(a) == len(b) == N
    assert np.array_equal(a.offsets, b.offsets)
    assert np.array_equal(a.ids, b.ids)
    assert np.array_equal(a.vectors, b.vectors)
    assert a.texts(0, N) == b.texts(0, N)


def test_a_small_corpus_is_the_prefix_of_a_larger_one(
    built: tuple[corpus_1m.Corpus, corpus_1m.Corpus],
) -> None:
    small = corpus_1m.build(500, cache=None)
    assert small.texts(0, 500) == built[0].texts(0, 500)
    assert np.array_equal(small.vectors, built[0].vectors[:500])


def test_lengths_follow_the_real_passages(
    built: tuple[corpus_1m.Corpus, corpus_1m.Corpus],
) -> None:
    lengths = np.diff(built[0].offsets)
    real = corpus_1m.templates(corpus_1m.DATA).length
    # SciFact abstracts (~215 words) cut at 200, MS MARCO passages (~63), SQuAD (~123)
    assert lengths.min() >= 1 and lengths.max() <= corpus_1m.MAX_WORDS
    assert 90 <= lengths.mean() <= 140
    assert lengths.std() > 30  # a spread of passage lengths, not one fixed size
    for q in (10, 50, 90):
        assert abs(np.percentile(lengths, q) - np.percentile(real, q)) <= 12


def test_text_is_real_words_and_vectors_are_unit(
    built: tuple[corpus_1m.Corpus, corpus_1m.Corpus],
) -> None:
    corpus = built[0]
    words = " ".join(corpus.texts(0, 200)).split()
    common = {"the", "of", "and", "in", "to"}
    assert sum(w in common for w in words) / len(words) > 0.05  # Zipf: function words abound
    norms = np.linalg.norm(corpus.vectors, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)


def test_queries_lean_towards_their_topic() -> None:
    texts, vectors = corpus_1m.queries(corpus_1m.templates(corpus_1m.DATA), 20)
    assert len(texts) == 20 and all(1 <= len(t.split()) <= 6 for t in texts)
    corpus = corpus_1m.build(N, cache=None)
    best = (vectors @ corpus.vectors.T).max(axis=1)
    assert np.median(best) > 0.3  # a query has near neighbours; random pairs are near 0
