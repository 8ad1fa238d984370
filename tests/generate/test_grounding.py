"""Grounding with the real packaged cross-encoder: per-sentence support, re-citation, not found."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.generate.grounding import (
    CrossEncoderJudge,
    LexicalJudge,
    answer_sentences,
    check_support,
    join_sentences,
    judge_for,
    relevance,
)

SOLAR_TERMS = Path(__file__).parents[2] / "examples" / "corpus" / "solar-terms.zh.md"

PASSAGES = [
    "A derailleur moves the chain between sprockets by pushing it sideways.",
    "The printing press was invented by Johannes Gutenberg around 1440 in Mainz. He cast type "
    "from an alloy of lead, tin and antimony.",
    "Sourdough rises because wild yeast in the starter makes carbon dioxide.",
]


@pytest.fixture(scope="module")
def judge() -> CrossEncoderJudge:
    return CrossEncoderJudge()


def test_sentences_carry_their_own_markers() -> None:
    sentences = answer_sentences("Gutenberg built it [2]. [2] Yeast makes gas. [3] Bikes.")
    assert [s.citations for s in sentences] == [(2,), (3,), ()]
    assert [s.claim for s in sentences] == ["Gutenberg built it.", "Yeast makes gas.", "Bikes."]
    # a marker written twice or after the full stop is shown once, before it
    assert join_sentences([s.text for s in sentences]) == (
        "Gutenberg built it [2]. Yeast makes gas [3]. Bikes."
    )
    assert (
        join_sentences(["谷雨是第六个节气[1]。", "它在四月[1]。"])
        == "谷雨是第六个节气[1]。它在四月[1]。"
    )


def test_a_supported_sentence_is_marked_supported(judge: CrossEncoderJudge) -> None:
    [s] = check_support(
        "Johannes Gutenberg invented the printing press around 1440 [2].", PASSAGES, judge
    )
    assert s.supported is True and s.citations == (2,) and not s.inferred
    assert s.score is not None and s.score >= judge.support_threshold


def test_a_wrong_citation_moves_to_the_passage_that_holds_the_fact(
    judge: CrossEncoderJudge,
) -> None:
    [s] = check_support("Type was cast from lead, tin and antimony [1].", PASSAGES, judge)
    assert s.supported is True and s.citations == (2,) and s.inferred
    assert s.text == "Type was cast from lead, tin and antimony [2]."


def test_a_claim_no_passage_holds_is_unsupported(judge: CrossEncoderJudge) -> None:
    [s] = check_support("The Eiffel Tower is 330 metres tall [1].", PASSAGES, judge)
    assert s.supported is False and s.citations == (1,)
    [u] = check_support("Honeybees dance to show where flowers are.", PASSAGES, judge)
    assert u.supported is False and u.citations == ()


def test_relevance_separates_answerable_questions(judge: CrossEncoderJudge) -> None:
    inside = relevance("Who invented the printing press?", PASSAGES, judge)
    outside = relevance("What is the capital of Australia?", PASSAGES, judge)
    assert inside >= judge.relevance_threshold > outside
    assert relevance("anything", [], judge) == float("-inf")


def test_a_short_answer_is_checked_as_the_answer_to_the_question(
    judge: CrossEncoderJudge,
) -> None:
    question = "What did Gutenberg cast his type from?"
    [s] = check_support("lead, tin and antimony [2]", PASSAGES, judge, question=question)
    assert s.supported is True and s.citations == (2,) and not s.inferred
    # cited to the wrong passage: moved to the one that holds it
    [m] = check_support("lead, tin and antimony [3]", PASSAGES, judge, question=question)
    assert m.supported is True and m.citations == (2,) and m.inferred
    # a short answer its passage does not contain is made up, however relevant the passage
    [u] = check_support("Mercury [2]", PASSAGES, judge, question=question)
    assert u.supported is False and u.citations == (2,)


def test_a_short_answer_that_only_repeats_the_question_is_unsupported(
    judge: CrossEncoderJudge,
) -> None:
    passages = ["谷雨是二十四节气的第六个节气，也是春季的最后一个节气。", *PASSAGES]
    # the passage matches the question, but the reply names what was asked about
    [echo] = check_support("谷雨 [1]", passages, judge, question="谷雨是第几个节气？")
    assert echo.supported is False
    [right] = check_support("第六个 [1]", passages, judge, question="谷雨是第几个节气？")
    assert right.supported is True
    [en] = check_support("Gutenberg [3]", passages, judge, question="What did Gutenberg invent?")
    assert en.supported is False
    # a question that offers its answers is answered with words it contains
    [choice] = check_support(
        "tin [3]", passages, judge, question="Did Gutenberg's alloy hold tin or copper?"
    )
    assert choice.supported is True
    [between] = check_support(
        "EU law [1]",
        ["Where national law conflicts with EU law, EU law takes precedence."],
        judge,
        question="Between EU law and national law, which takes precedence in a conflict?",
    )
    assert between.supported is True


def test_a_number_written_in_digits_matches_its_passage_in_words(
    judge: CrossEncoderJudge,
) -> None:
    passages = ["The Panthers defense forced seven turnovers in the NFC Championship game."]
    question = "How many turnovers did the Panthers force?"
    [digits] = check_support("7 [1]", passages, judge, question=question)
    assert digits.supported is True
    [wrong] = check_support("8 [1]", passages, judge, question=question)
    assert wrong.supported is False


def test_chinese_answers_are_checked_by_their_words(judge: CrossEncoderJudge) -> None:
    # the packaged cross-encoder reads English only: its scores for Chinese are noise
    assert judge_for(judge, "Who invented the printing press?") is judge
    lexical = judge_for(judge, "二十四节气是什么时候被列入非物质文化遗产名录的？")
    assert isinstance(lexical, LexicalJudge)
    passages = [p for p in SOLAR_TERMS.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    passages += PASSAGES
    question = "二十四节气是什么时候被列入非物质文化遗产名录的？"
    n = next(i for i, p in enumerate(passages) if "2016年11月30日" in p) + 1
    [right] = check_support(f"2016年11月30日 [{n}]", passages, lexical, question=question)
    assert right.supported is True and right.citations == (n,)
    # a reworded sentence with the passage's facts passes, one with a wrong year does not
    [said] = check_support(
        f"二十四节气在2016年11月30日被列入联合国教科文组织的名录 [{n}]。",
        passages,
        lexical,
        question=question,
    )
    assert said.supported is True
    [wrong] = check_support(f"1998年5月 [{n}]", passages, lexical, question=question)
    assert wrong.supported is False
    [elsewhere] = check_support(
        f"它由清朝钦天监制定并颁布全国 [{n}]。", passages, lexical, question=question
    )
    assert elsewhere.supported is False
    # word overlap cannot tell whether the passages hold an answer: it never refuses
    assert relevance(question, passages, lexical) >= lexical.relevance_threshold


def test_a_chinese_short_answer_is_judged_by_its_own_words(judge: CrossEncoderJudge) -> None:
    passages = [p for p in SOLAR_TERMS.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    n = next(i for i, p in enumerate(passages) if "雨生百谷" in p) + 1
    question = "“谷雨”这个名字是什么意思？"
    lexical = judge_for(judge, question)
    # a span copied from its passage: beside the question's own words it scored 0.33
    [copied] = check_support(f"雨生百谷 [{n}]", passages, lexical, question=question)
    assert copied.supported is True
    # words the passages lack fail, even beside the question's own ("名字", "意思")
    [made_up] = check_support(f"名字意思是冬天下雪 [{n}]", passages, lexical, question=question)
    assert made_up.supported is False


def test_a_short_answer_with_a_number_its_passage_lacks_is_unsupported(
    judge: CrossEncoderJudge,
) -> None:
    question = "When did Gutenberg invent the printing press?"
    # "Mainz" matches half the fragment's words; the year is what the answer asserts
    [wrong] = check_support("1441 in Mainz [2]", PASSAGES, judge, question=question)
    assert wrong.supported is False
    [right] = check_support("around 1440 in Mainz [2]", PASSAGES, judge, question=question)
    assert right.supported is True
    passages = ["The company employed 1,440 people in Mainz."]
    question = "How many people did the company employ in Mainz?"
    [commas] = check_support("1440 [1]", passages, judge, question=question)
    assert commas.supported is True
