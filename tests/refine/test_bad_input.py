"""Bad input to the text refiners: a valid context comes back and the report says what happened."""

from __future__ import annotations

import pytest

from mmrag.refine import load_refiner
from mmrag.refine.base import MIN_CONTEXT_TOKENS, Refiner
from mmrag.refine.sentences import word_spans
from mmrag.types import Document, Hit, Query, Ranked

MIXED = (
    "北京大学创建于1898年，初名京师大学堂。 Peking University was founded in 1898 as the "
    "Imperial University of Peking. Москва — столица России. 東京は日本の首都です。"
    "서울은 한국의 수도입니다. The café's naïve menu costs 12 €. 😀👍🏽 emoji too."
)


@pytest.fixture(scope="module", params=["extractive", "lingua"])
def refiner(request: pytest.FixtureRequest) -> Refiner:
    return load_refiner(request.param)


def _pieces_are_the_source(out: Ranked) -> None:
    for hit in out.hits:
        assert "\ufffd" not in hit.passage
        bounds = word_spans(hit.doc.text)
        starts, ends = set(bounds[:, 0].tolist()), set(bounds[:, 1].tolist())
        for span in hit.kept:
            assert span.start in starts and span.end in ends  # whole words, whole characters
            assert hit.doc.text[span.start : span.end] in hit.passage


def test_empty_and_blank_hits(refiner: Refiner) -> None:
    query = Query("anything?")
    empty = refiner.refine(Ranked(query, []), budget_tokens=64)
    assert empty.hits == [] and empty.reports[-1].errors == ["no hits to refine"]
    blank = Ranked(query, [Hit(Document("b", "  \n "), 1.0)])
    out = refiner.refine(blank, rate=2.0)
    assert out.hits == [] and "no hits with text" in out.reports[-1].errors[0]
    assert out.reports[-1].extra["dropped"] == ["b"]


def test_budget_smaller_than_the_question(refiner: Refiner) -> None:
    question = "In which year and under which name was the university in Beijing first founded?"
    query = Query(question)
    ranked = Ranked(query, [Hit(Document("m", MIXED), 1.0)])
    out = refiner.refine(ranked, budget_tokens=8)
    report = out.reports[-1]
    assert "budget of 8 tokens leaves" in report.errors[0]
    assert out.hits and 0 < report.extra["tokens_out"] <= MIN_CONTEXT_TOKENS + 2
    _pieces_are_the_source(out)


def test_mixed_scripts_are_cut_at_word_and_character_boundaries(refiner: Refiner) -> None:
    query = Query("北京大学 was founded in which year?")
    hits = [Hit(Document(f"m{i}", MIXED[i * 7 :]), 1.0) for i in range(3)]
    out = refiner.refine(Ranked(query, hits), rate=3.0)
    assert out.hits
    _pieces_are_the_source(out)
    assert out.reports[-1].extra["tokens_out"] <= out.reports[-1].extra["target_tokens"] + 2


def test_cjk_only_passage_with_a_tiny_budget_keeps_whole_characters(refiner: Refiner) -> None:
    text = "北京大学是中国近代第一所国立综合性大学，创建于1898年，初名京师大学堂，" * 3
    query = Query("北京大学创建于哪一年？")
    out = refiner.refine(Ranked(query, [Hit(Document("zh", text), 1.0)]), budget_tokens=20)
    assert out.hits
    _pieces_are_the_source(out)
    assert " " not in out.hits[0].passage  # Chinese pieces are joined without spaces
