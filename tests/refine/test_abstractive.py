"""Abstractive refiner with the real packaged SmolLM2: a cited summary, or a stated fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.eval.refine import squad_samples
from mmrag.refine.abstractive import (
    AbstractiveRefiner,
    content_words,
    parse_summary,
    supporting_sentence,
)
from mmrag.refine.sentences import split_sentences
from mmrag.types import Document, Hit, Query, Ranked


@pytest.fixture(scope="module")
def abstractive() -> AbstractiveRefiner:
    return AbstractiveRefiner()


def test_parse_summary_reads_citations_and_counts_bad_ones() -> None:
    reply = "Denver won the game [2]. It was in 2016 [1, 3]. The sky is green [9]. Loose end"
    got, invalid = parse_summary(reply, n_sentences=3)
    assert got == [
        ("Denver won the game.", [1]),
        ("It was in 2016.", [0, 2]),
        ("The sky is green.", []),
        ("Loose end", []),
    ]
    assert invalid == 1  # [9] names no sentence


def test_uncited_claims_are_matched_to_a_source_or_dropped() -> None:
    sources = [content_words("北京大学创建于1898年。"), content_words("Paris is in France.")]
    asked = content_words("When was it founded?")
    assert supporting_sentence("北京大学创建", sources, asked) == 0
    assert supporting_sentence("Paris lies far from Spain", sources, asked) is None
    assert supporting_sentence("Paris is in France", sources, asked) == 1


def _every_kept_span_is_a_source_sentence(out: Ranked) -> None:
    """Kept spans are whole source sentences (adjacent ones merged into one span)."""
    for hit in out.hits:
        sentences = split_sentences(hit.doc.text)
        starts, ends = {a for a, _ in sentences}, {b for _, b in sentences}
        assert hit.kept
        for span in hit.kept:
            assert span.start in starts and span.end in ends


def test_summary_cites_its_source_sentences(
    abstractive: AbstractiveRefiner, data_dir: Path
) -> None:
    sample = squad_samples(data_dir / "squad" / "dev-v1.1.json", n=200)[10]
    gold = next(p for p in sample.passages if any(a in p[1] for a in sample.answers))
    other = next(p for p in sample.passages if p is not gold)
    query = Query(sample.question)
    ranked = Ranked(query, [Hit(Document(pid, text), 1.0) for pid, text in (gold, other)])
    out = abstractive.refine(ranked, rate=4.0)
    report = out.reports[-1]
    assert report.model_calls == 1
    assert report.extra["summary"]  # the raw reply is kept for inspection
    assert out.hits, report.errors
    _every_kept_span_is_a_source_sentence(out)
    if report.extra.get("fallback") == "extractive":
        assert any("cited no sentence" in e for e in report.errors)
    else:
        assert all(h.passage and h.passage != h.doc.text for h in out.hits)
        assert report.extra["tokens_out"] < report.extra["tokens_in"]


def test_input_longer_than_the_model_is_cut_first_and_reported(
    abstractive: AbstractiveRefiner, data_dir: Path
) -> None:
    small = AbstractiveRefiner(lm=abstractive.lm, max_input_tokens=128)
    sample = squad_samples(data_dir / "squad" / "dev-v1.1.json", n=200)[20]
    ranked = sample.ranked()
    out = small.refine(ranked, budget_tokens=96)
    report = out.reports[-1]
    assert any("exceed the model input of 128" in e for e in report.errors)
    assert out.hits
    _every_kept_span_is_a_source_sentence(out)
