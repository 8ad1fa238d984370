"""Extractive refiner on real SQuAD / CMRC subsets, plus the shared refiner bookkeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import ConfigError
from mmrag.eval.refine import evaluate_refiner, squad_samples
from mmrag.refine import REFINERS, load_refiner
from mmrag.refine.base import MIN_CONTEXT_TOKENS
from mmrag.refine.extractive import ExtractiveRefiner, mmr_select
from mmrag.types import Document, Hit, Query, Ranked, Span


@pytest.fixture(scope="module")
def refiner() -> ExtractiveRefiner:
    r = load_refiner("extractive")
    assert isinstance(r, ExtractiveRefiner)
    return r


@pytest.fixture(scope="module")
def squad(data_dir: Path) -> list:
    return squad_samples(data_dir / "squad" / "dev-v1.1.json", n=40)


def _reference_mmr(rel, sim, costs, budget, diversity):  # plain-Python MMR, the textbook loop
    picked, left = [], budget
    while True:
        best, best_gain = None, None
        for i in range(len(rel)):
            if i in picked or costs[i] > left:
                continue
            red = max((sim[i][j] for j in picked), default=0.0)
            gain = (1 - diversity) * rel[i] - diversity * red
            if best_gain is None or gain > best_gain:
                best, best_gain = i, gain
        if best is None:
            return picked
        picked.append(best)
        left -= costs[best]


def test_mmr_matches_the_textbook_loop() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.normal(size=(30, 8)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        q = v[0] + 0.1 * rng.normal(size=8).astype(np.float32)
        rel, sim = v @ q, v @ v.T
        costs = rng.integers(5, 40, size=30)
        got = mmr_select(rel, sim, costs, 150, 0.3)
        assert got == _reference_mmr(rel.tolist(), sim.tolist(), costs.tolist(), 150, 0.3)
        assert costs[got].sum() <= 150


def test_squad_answers_survive_4x_within_budget(refiner: ExtractiveRefiner, squad: list) -> None:
    score = evaluate_refiner(refiner, squad, rate=4.0)
    assert 3.6 <= score.achieved_rate <= 4.6
    assert score.answer_survival >= 0.85
    # Every kept piece is the source text at the recorded offsets, in source order.
    ranked = squad[3].ranked()
    out = refiner.refine(ranked, rate=4.0)
    report = out.reports[-1]
    assert report.extra["tokens_out"] <= report.extra["target_tokens"] + 2
    for hit in out.hits:
        starts = [s.start for s in hit.kept]
        assert starts == sorted(starts)
        for span in hit.kept:
            assert hit.doc.text[span.start : span.end] in hit.passage
    assert set(report.extra["dropped"]) == {h.doc.id for h in ranked.hits} - set(out.ids())


def test_duplicate_passages_are_not_kept_twice(refiner: ExtractiveRefiner, squad: list) -> None:
    sample = squad[0]
    pid, text = next(p for p in sample.passages if any(a in p[1] for a in sample.answers))
    hits = [Hit(Document(id=f"{pid}-{i}", text=text), 1.0) for i in range(2)]
    out = refiner.refine(Ranked(Query(sample.question), hits), rate=2.0)
    kept = [s.strip() for h in out.hits for s in h.passage.split(". ")]
    assert len(kept) == len(set(kept))  # the copy adds nothing, so MMR skips it


def test_chinese_answers_survive(refiner: ExtractiveRefiner, data_dir: Path) -> None:
    samples = squad_samples(data_dir / "cmrc2018" / "trial.json", n=30)
    score = evaluate_refiner(refiner, samples, rate=4.0)
    assert score.answer_survival >= 0.6
    assert 3.3 <= score.achieved_rate <= 4.8


def test_bad_input_gives_valid_context_and_says_so(refiner: ExtractiveRefiner, squad: list) -> None:
    sample = squad[1]
    ranked = sample.ranked()
    empty = refiner.refine(Ranked(ranked.query, []), rate=4.0)
    assert empty.hits == [] and "no hits" in empty.reports[-1].errors[0]
    tiny = refiner.refine(ranked, budget_tokens=3)
    assert tiny.hits and "budget of 3 tokens" in tiny.reports[-1].errors[0]
    assert tiny.reports[-1].extra["tokens_out"] <= MIN_CONTEXT_TOKENS + 2
    with pytest.raises(ConfigError, match="did you mean 4"):
        refiner.refine(ranked, rate=0.25)
    mixed = Ranked(
        Query("北京大学 was founded when?"),
        [
            Hit(
                Document(
                    "m",
                    "北京大学创建于1898年。 Peking University was founded in 1898. "
                    "Its campus is in Haidian. 学校位于海淀区。",
                ),
                1.0,
            )
        ],
    )
    out = refiner.refine(mixed, rate=2.0)
    assert "1898" in out.hits[0].passage


def test_kept_spans_point_into_the_source_through_chained_refiners(
    refiner: ExtractiveRefiner, squad: list
) -> None:
    sample = squad[2]
    base = 1000
    hits = [
        Hit(Document(pid, text, span=Span(start=base, end=base + len(text), page=3)), 1.0)
        for pid, text in sample.passages
    ]
    source = {h.doc.id: " " * base + h.doc.text for h in hits}  # the text the offsets refer to
    first = refiner.refine(Ranked(Query(sample.question), hits), rate=2.0)
    second = refiner.refine(first, rate=2.0)
    for ranked in (first, second):
        for hit in ranked.hits:
            assert all(s.page == 3 for s in hit.kept)
            pieces = [source[hit.doc.id][s.start : s.end] for s in hit.kept]
            assert " ".join(pieces) == hit.passage


def test_registry_knows_the_refiners() -> None:
    assert {"extractive", "lingua", "abstractive"} <= set(REFINERS.names())
    with pytest.raises(ConfigError):
        load_refiner("nope")


def test_cross_encoder_relevance_keeps_the_sentence_that_answers() -> None:
    text = (Path(__file__).parents[2] / "examples" / "corpus" / "printing-press.txt").read_text()
    gutenberg = text[text.index("Gutenberg's invention") : text.index("The spread of printing")]
    ranked = Ranked(
        Query("Who invented the printing press, and when?"),
        [Hit(Document(id="press", text=gutenberg), 1.0)],
    )
    kept = ExtractiveRefiner(relevance="cross-encoder").refine(ranked, budget_tokens=80)
    assert "around 1440" in kept.hits[0].text
    # a question the English cross-encoder cannot read is ranked by the embedding
    chinese = ExtractiveRefiner(relevance="cross-encoder")
    question = "谷雨是什么意思？"
    assert not chinese.cross_encoder.reads(question)
    sentences = ["谷雨意为雨生百谷。", "芒种指有芒的麦子要抓紧收割。"]
    vectors = chinese.encoder.encode(sentences)
    expected = vectors @ chinese.encoder.encode_queries([question])[0]
    assert np.allclose(chinese.sentence_relevance(question, sentences, vectors), expected)
    with pytest.raises(ValueError, match="relevance must be one of"):
        ExtractiveRefiner(relevance="bm25")
