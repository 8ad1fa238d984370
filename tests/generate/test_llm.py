"""LLMGenerator with the real packaged Qwen2.5-0.5B-Instruct (the fast local model)."""

from __future__ import annotations

import re

import pytest

from mmrag.generate import GENERATORS, Answer
from mmrag.generate.llm import NO_CONTEXT, LLMGenerator
from mmrag.types import Document, Hit, Query, Ranked, Span, StageReport

PASSAGES = [
    ("derailleur.md#0", "A derailleur moves the chain between sprockets by pushing it sideways."),
    ("press.txt#2", "The printing press was invented by Johannes Gutenberg around 1440 in Mainz."),
    ("sourdough.md#1", "Sourdough rises because wild yeast in the starter makes carbon dioxide."),
]


def ranked(question: str, passages: list[tuple[str, str]] = PASSAGES) -> Ranked:
    hits = [
        Hit(Document(id=i, text=t, source_id=i.split("#")[0], span=Span(0, len(t))), score=1.0)
        for i, t in passages
    ]
    return Ranked(Query(question), hits, [StageReport("retrieve", "test", n_out=len(hits))])


@pytest.fixture(scope="module")
def generator() -> LLMGenerator:
    return GENERATORS.create(  # type: ignore[return-value]
        "llm", model="qwen2.5-coder-0.5b-instruct", max_tokens=24
    )


def _unmarked(text: str) -> str:
    """The words, without markers: the final text shows each marker once, before the stop."""
    return re.sub(r"\s+([.!?])", r"\1", " ".join(re.sub(r"\[\d+\]", "", text).split()))


def test_answers_from_the_passage_and_cites_it(generator: LLMGenerator) -> None:
    answer = generator.generate(ranked("Who invented the printing press?"))
    assert "Gutenberg" in answer.text
    assert [c.number for c in answer.citations] == [2]
    assert answer.citations[0].doc.id == "press.txt#2"
    assert answer.citations[0].to_dict()["source_id"] == "press.txt"
    assert answer.dropped == []
    report = answer.reports[-1]
    assert [r.stage for r in answer.reports] == ["retrieve", "generate"]
    assert report.model_calls == 1 and report.n_in == 3 and report.n_out == 1
    assert 0 < report.extra["completion_tokens"] <= 24
    assert report.extra["prompt_tokens"] > 50
    assert report.extra["first_token_s"] is not None


def test_stream_pieces_add_up_to_the_answer(generator: LLMGenerator) -> None:
    items = list(generator.stream(ranked("Why does sourdough rise?"), max_tokens=10))
    *pieces, answer = items
    assert isinstance(answer, Answer) and len(pieces) > 2
    assert all(isinstance(p, str) for p in pieces)
    assert _unmarked("".join(pieces)) == _unmarked(answer.text)
    assert answer.reports[-1].extra["max_tokens"] == 10
    assert answer.reports[-1].extra["completion_tokens"] <= 10


def test_closing_the_stream_stops_the_model(generator: LLMGenerator) -> None:
    usage = generator.lm.usage
    before = usage.completion_tokens
    stream = generator.stream(ranked("Explain how a bicycle works."), max_tokens=200)
    first = next(stream)
    assert isinstance(first, str)
    stream.close()
    made = usage.completion_tokens - before
    assert made < 50, made  # 200 were allowed


def test_citations_naming_no_passage_are_dropped_and_reported(generator: LLMGenerator) -> None:
    report = StageReport("generate", "llm")
    raw = "Gutenberg invented it [2][5]. Yeast makes gas [9]."
    answer = generator.answer(ranked("q"), raw, report, "stop")
    assert answer.text.startswith("Gutenberg invented it [2].")
    assert answer.dropped == [5, 9]
    assert "dropped citations naming no passage: 5, 9" in report.errors
    assert [c.number for c in answer.citations][0] == 2


def test_no_passages_answers_without_calling_the_model(generator: LLMGenerator) -> None:
    calls = generator.lm.usage.calls
    answer = generator.generate(ranked("Anything?", []))
    assert answer.text == NO_CONTEXT and answer.finish_reason == "no_context"
    assert generator.lm.usage.calls == calls


def test_bad_parameters_are_config_errors() -> None:
    from mmrag.errors import ConfigError

    with pytest.raises(ConfigError, match="max_tokens must be positive"):
        LLMGenerator(max_tokens=0)
    with pytest.raises(ConfigError, match="needs a model name"):
        LLMGenerator(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="bad parameters for generator 'llm'"):
        GENERATORS.create("llm", temprature=0.3)


def test_text_models_cannot_read_photos_without_text(generator: LLMGenerator) -> None:
    from mmrag.types import Modality

    photo = Hit(Document(id="p", modality=Modality.IMAGE, media="uploads/a/p.jpg"), 1.0)
    captioned = Hit(Document(id="c", text="a dog", modality=Modality.IMAGE, media="x.jpg"), 1.0)
    assert not generator.readable(photo)
    assert generator.readable(captioned)
    assert generator.readable(ranked("q").hits[0])
    seeing = LLMGenerator(generator.lm, multimodal=True)
    assert seeing.readable(photo)


def test_a_chinese_question_is_checked_by_words_not_by_the_english_judge() -> None:
    # the default 1.5B model: the 0.5B answers this with a year from the English passages
    # ("1940 [3]"), which the word check refuses
    generator = GENERATORS.create("llm", model="qwen2.5-coder-1.5b-instruct", max_tokens=24)
    passages = [
        (
            "solar-terms.zh.md#3",
            "2016年11月30日，“二十四节气”被列入联合国教科文组织人类非物质文化遗产代表作名录。",
        ),
        *PASSAGES,
    ]
    answer = generator.generate(ranked("二十四节气是哪一天被列入非物质文化遗产名录的？", passages))
    report = answer.reports[-1]
    # the English cross-encoder's relevance for Chinese is noise: no refusal on it
    assert report.extra["judge"] == "lexical" and "relevance" not in report.extra
    assert not answer.not_found and "2016年11月30日" in answer.text
    assert answer.sentences[0].supported and answer.citations[0].hit.doc.id.startswith("solar")
