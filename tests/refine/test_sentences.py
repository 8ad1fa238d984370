"""Sentence and word boundaries: offsets into the original text, CJK-safe, checked on real data."""

from __future__ import annotations

from pathlib import Path

from mmrag.eval.datasets import load_hotpotqa, load_squad_retrieval
from mmrag.refine.sentences import is_cjk, join_pieces, split_sentences, word_spans


def test_english_sentences_respect_abbreviations_and_initials() -> None:
    text = 'Dr. Smith moved to the U.S. in 1990. He said: "It works!" Then e.g. this.  Done?'
    got = [text[a:b] for a, b in split_sentences(text)]
    assert got == [
        "Dr. Smith moved to the U.S. in 1990.",
        'He said: "It works!"',
        "Then e.g. this.",
        "Done?",
    ]


def test_chinese_sentences_split_at_full_width_punctuation() -> None:
    text = "北京是中国的首都。上海在哪里？“我不知道！”他说；好的"
    got = [text[a:b] for a, b in split_sentences(text)]
    assert got == ["北京是中国的首都。", "上海在哪里？", "“我不知道！”", "他说；", "好的"]


def test_long_run_on_sentence_is_cut_at_commas() -> None:
    text = ", ".join(f"item {i}" for i in range(200))
    spans = split_sentences(text, max_chars=100)
    assert all(b - a <= 100 for a, b in spans)
    assert "".join(text[a:b] for a, b in spans).replace(",", "").replace(" ", "") == text.replace(
        ",", ""
    ).replace(" ", "")


def test_splitter_agrees_with_hotpotqa_gold_sentences(data_dir: Path) -> None:
    # HotpotQA ships its paragraphs pre-split into sentences: a human-checked reference.
    questions = load_hotpotqa(data_dir / "hotpotqa" / "dev_distractor_sample100.json", 30)
    gold_bounds = found = matched = 0
    for q in questions:
        for p in q.paragraphs:
            text = p.text
            ends, pos = set(), 0
            for s in p.sentences:
                pos += len(s)
                ends.add(len(text[:pos].rstrip()))
            ours = {b for _, b in split_sentences(text)}
            gold_bounds += len(ends)
            found += len(ours)
            matched += len(ends & ours)
    recall, precision = matched / gold_bounds, matched / found
    assert recall > 0.9, recall
    assert precision > 0.9, precision


def test_words_keep_cjk_words_whole_and_cover_every_character(data_dir: Path) -> None:
    data = load_squad_retrieval(data_dir / "cmrc2018" / "trial.json", max_paragraphs=20)
    for text in data.paragraphs.values():
        spans = word_spans(text)
        covered = "".join(text[a:b] for a, b in spans)
        assert covered == "".join(text.split())  # every non-space char, in order, once
        assert (spans[1:, 0] >= spans[:-1, 1]).all()
    spans = word_spans("我在北京大学读书 in Beijing.")
    words = ["我在北京大学读书 in Beijing."[a:b] for a, b in spans]
    assert "北京大学" in words and "Beijing." in words


def test_join_puts_spaces_only_between_non_cjk_pieces() -> None:
    text = "北京是首都。上海很大。Paris is big. Rome too."
    spans = [(0, 6), (11, 24), (25, 34)]
    joined, merged = join_pieces(text, spans)
    assert joined == "北京是首都。Paris is big. Rome too."
    assert merged == [(0, 6), (11, 34)]  # pieces separated only by a space are one span
    assert is_cjk("北") and not is_cjk("P")
