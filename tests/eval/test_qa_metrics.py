"""QA answer metrics on hand-worked cases of the official scripts (SQuAD v1.1, HotpotQA,
CMRC 2018): each expected value is what the official function returns for that input."""

from __future__ import annotations

import pytest

from mmrag.eval.qa_metrics import (
    CMRC_PUNCTUATION,
    SCORERS,
    cmrc_exact_match,
    cmrc_f1,
    cmrc_remove_punctuation,
    cmrc_segments,
    contains_cmrc,
    contains_squad,
    hotpot_f1,
    longest_common_run,
    normalize_answer,
    squad_exact_match,
    squad_f1,
    strip_citation_markers,
)

# ---- SQuAD v1.1 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Denver Broncos!", "denver broncos"),
        ("  an   apple, a  day ", "apple day"),
        ("Theater of the Absurd", "theater of absurd"),  # 'the' only as a whole word
        ("U.S. Army", "us army"),  # punctuation goes before articles are matched
        ("24–10", "24–10"),  # the en dash is not in string.punctuation
        ("A", ""),
    ],
)
def test_normalize_answer(text: str, normalised: str) -> None:
    assert normalize_answer(text) == normalised


def test_squad_f1_counts_a_bag_of_words() -> None:
    assert squad_f1("Denver Broncos", "the Denver Broncos") == 1.0
    # common 1 of 2 predicted and 2 gold tokens: p = r = 1/2
    assert squad_f1("Broncos won", "Denver Broncos") == pytest.approx(0.5)
    # Counter intersection: 'cat' is common once; p = 1/2, r = 1 -> 2/3
    assert squad_f1("the cat cat", "cat") == pytest.approx(2 / 3)
    # 8 tokens once 'The' and '.' are gone: p = 2/8, r = 1 -> 0.4
    assert squad_f1("The Denver Broncos won Super Bowl 50 in 2016.", "Denver Broncos") == (
        pytest.approx(0.4)
    )
    assert squad_f1("", "Denver Broncos") == 0.0
    assert squad_f1("the", "Denver") == 0.0  # nothing left after normalisation


def test_squad_exact_match_after_normalisation() -> None:
    assert squad_exact_match("the Denver Broncos.", "Denver Broncos") == 1.0
    assert squad_exact_match("Denver", "Denver Broncos") == 0.0


def test_scores_take_the_best_gold_answer_and_ignore_citation_markers() -> None:
    squad = SCORERS["squad"]
    golds = ["Denver Broncos", "Broncos", "The Broncos"]
    assert squad.score("Broncos [1]", golds) == (1.0, 1.0)
    em, f1 = squad.score("The Denver Broncos won [1][2].", golds)
    assert em == 0.0
    # best gold: "Denver Broncos" (p = 2/3, r = 1 -> 0.8); "Broncos" gives only 0.5
    assert f1 == pytest.approx(0.8)
    assert squad.score("anything", []) == (0.0, 0.0)
    assert strip_citation_markers("Paris [12] and [x]").split() == ["Paris", "and", "[x]"]


def test_contains_squad_matches_whole_normalised_words() -> None:
    passage = "The American Football Conference champion Denver Broncos defeated the Panthers."
    assert contains_squad(passage, "denver broncos!")
    assert contains_squad(passage, "the Panthers")
    assert not contains_squad(passage, "Bronco")  # not inside a word
    assert not contains_squad(passage, "the")  # empty once normalised


# ---- HotpotQA ----------------------------------------------------------------------


def test_hotpot_f1_treats_yes_and_no_as_exact() -> None:
    assert hotpot_f1("yes", "yes") == 1.0
    assert hotpot_f1("Yes.", "yes") == 1.0  # normalised before the comparison
    assert hotpot_f1("yes, both are", "yes") == 0.0  # SQuAD's F1 would give 0.5
    assert squad_f1("yes, both are", "yes") == pytest.approx(0.5)
    assert hotpot_f1("no", "Arthur's Magazine") == 0.0
    assert hotpot_f1("Arthur's Magazine", "Arthur's Magazine") == 1.0


# ---- CMRC 2018 ---------------------------------------------------------------------


def test_cmrc_punctuation_is_the_scripts_list() -> None:
    assert len(CMRC_PUNCTUATION) == 33
    assert "。" in CMRC_PUNCTUATION and "……" in CMRC_PUNCTUATION
    assert "." not in CMRC_PUNCTUATION and "," not in CMRC_PUNCTUATION
    # lower + strip, then only listed marks go; inner spaces and ASCII '.' stay
    assert cmrc_remove_punctuation(" 《红楼梦》。 ") == "红楼梦"
    assert cmrc_remove_punctuation("Mr. Li 先生") == "mr. li 先生"


def test_cmrc_segments_split_chinese_by_character_and_other_text_by_word() -> None:
    assert cmrc_segments("踢爆") == ["踢", "爆"]
    assert cmrc_segments("2018年冬季") == ["2018", "年", "冬", "季"]
    assert cmrc_segments("由Nexon开发") == ["由", "nexon", "开", "发"]
    # kept marks are segments of their own without removal, and vanish with it
    assert cmrc_segments("《泡泡堂》") == ["《", "泡", "泡", "堂", "》"]
    assert cmrc_segments("《泡泡堂》", remove_punctuation=True) == ["泡", "泡", "堂"]
    # a removed mark does not end its run, as in the script: "e-mail" is one word
    assert cmrc_segments("e-mail地址", remove_punctuation=True) == ["email", "地", "址"]
    # nltk's word rules: inner '.' and ',' stay, a final period and '%' are split off
    assert cmrc_segments("3.5%的人") == ["3.5", "%", "的", "人"]
    assert cmrc_segments("约1,000 km.") == ["约", "1,000", "km", "."]
    # each run between Chinese characters is tokenised alone, so both quotes open one
    assert cmrc_segments('称"星"') == ["称", "``", "星", "``"]


def test_longest_common_run_is_contiguous() -> None:
    assert longest_common_run(list("abcde"), list("xbcdy")) == 3
    assert longest_common_run(list("abc"), list("acb")) == 1  # 'ab' is not contiguous there
    assert longest_common_run([], list("abc")) == 0


def test_cmrc_f1_and_exact_match() -> None:
    assert cmrc_exact_match("踢爆。", "踢爆") == 1.0
    assert cmrc_exact_match("踢 爆", "踢爆") == 0.0  # spaces are not removed
    assert cmrc_f1("踢爆", "踢爆") == 1.0
    # gold 韩国Nexon -> [韩, 国, nexon]; prediction [由, 韩, 国, nexon, 开, 发]:
    # run 3, p = 3/6, r = 3/3 -> 2/3
    assert cmrc_f1("由韩国Nexon开发", "韩国Nexon") == pytest.approx(2 / 3)
    # longest common run, not a bag: 国韩 against 韩国 shares runs of length 1 only
    # p = 1/2, r = 1/2 -> 0.5 (a bag of characters would give 1.0)
    assert cmrc_f1("国韩", "韩国") == pytest.approx(0.5)
    assert cmrc_f1("，。", "韩国") == 0.0  # nothing left after punctuation removal
    scorer = SCORERS["cmrc2018"]
    # marker removed; [答, 案, 是, 踢, 爆] against 踢爆: run 2, p = 2/5, r = 1 -> 4/7
    # (against 被踢爆: p = 2/5, r = 2/3 -> 1/2)
    assert scorer.score("答案是踢爆[1]。", ["踢爆", "被踢爆"]) == (0.0, pytest.approx(4 / 7))


def test_contains_cmrc_is_a_substring_test_after_punctuation_removal() -> None:
    passage = "玩家以水枪、小枪、锤子或是水炸弹攻击对手，生命数耗完即算“踢爆”。"
    assert contains_cmrc(passage, "踢爆")
    assert contains_cmrc(passage, "“踢爆”")
    assert contains_cmrc(passage, "水枪小枪")  # 、 is removed from both
    assert not contains_cmrc(passage, "泡泡堂")
    assert not contains_cmrc(passage, "。")
