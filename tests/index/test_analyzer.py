"""The Analyzer: bm25s-identical English terms, and CJK text on real CMRC 2018 data."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import ConfigError
from mmrag.index.analyzer import ENGLISH_STOPWORDS, Analyzer, char_bigrams
from mmrag.index.sparse import SparseIndex

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def scifact_texts(data_dir: Path, n: int) -> list[str]:
    out = []
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            out.append(f"{rec['title']} {rec['text']}")
            if len(out) == n:
                break
    return out


def cmrc(data_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Paragraphs, and (question, index of its paragraph) pairs."""
    data = json.loads((data_dir / "cmrc2018" / "trial.json").read_text(encoding="utf-8"))
    paragraphs: list[str] = []
    questions: list[tuple[str, int]] = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            paragraphs.append(paragraph["context"])
            questions += [(qa["question"], len(paragraphs) - 1) for qa in paragraph["qas"]]
    return paragraphs, questions


def test_english_terms_equal_bm25s_tokenize(data_dir: Path) -> None:
    import bm25s
    import Stemmer

    texts = scifact_texts(data_dir, 500)
    want = bm25s.tokenize(
        texts,
        stopwords="en",
        stemmer=Stemmer.Stemmer("english"),
        return_ids=False,
        show_progress=False,
    )
    analyzer = Analyzer()
    for text, expected in zip(texts, want, strict=True):
        assert analyzer.tokens(text) == [t for t in expected if t]


def test_stopword_list_is_the_one_bm25s_uses() -> None:
    from bm25s.stopwords import STOPWORDS_EN

    assert ENGLISH_STOPWORDS == frozenset(STOPWORDS_EN)


def test_options_change_what_is_kept() -> None:
    text = "The Running of THE cats"
    assert Analyzer().tokens(text) == ["run", "cat"]
    assert Analyzer(stemmer=None).tokens(text) == ["running", "cats"]
    assert Analyzer(stopwords=None, stemmer=None).tokens(text) == [
        "the",
        "running",
        "of",
        "the",
        "cats",
    ]
    assert Analyzer(lowercase=False, stemmer=None).tokens(text) == ["The", "Running", "THE", "cats"]
    assert Analyzer().tokens("") == [] and Analyzer().tokens("a I 7 ,.;") == []


def test_cmrc_tokens_are_pieces_of_the_text(data_dir: Path) -> None:
    paragraphs, questions = cmrc(data_dir)
    analyzer = Analyzer()
    verbatim = Analyzer(lowercase=False, stemmer=None)
    for text in paragraphs + [q for q, _ in questions[:300]]:
        tokens = analyzer.tokens(text)
        assert tokens
        for token in tokens:
            if CJK.search(token):
                assert token in text  # segmentation never garbles or invents characters
            assert not re.search(r"[\s，。、；：？！“”（）《》「」【】,.;:?!()]", token)
        assert all(token in text for token in verbatim.tokens(text))
        # every Han character of the text is still there, in some token
        han = set(re.findall(r"[\u4e00-\u9fff]", text))
        assert han <= set("".join(tokens))


def test_cmrc_questions_find_their_paragraph(data_dir: Path) -> None:
    paragraphs, questions = cmrc(data_dir)
    analyzer = Analyzer()
    para_tokens = [set(analyzer.tokens(p)) for p in paragraphs]
    asked = [(q, i) for q, i in questions if q.strip()]  # two questions of the set are empty
    shared = [bool(para_tokens[i].intersection(analyzer.tokens(q))) for q, i in asked]
    # Word segmentation depends on context, so a name can be cut differently in the question
    # and in its paragraph (one of 1,000 here): nearly all, not all.
    assert np.mean(shared) >= 0.99

    index = SparseIndex()
    index.add(list(range(len(paragraphs))), [analyzer.tokens(p) for p in paragraphs])
    results = index.search_many([analyzer.tokens(q) for q, _ in questions], 10)
    reciprocal = []
    for (rows, _), (_, want) in zip(results, questions, strict=True):
        hit = np.flatnonzero(rows == want)
        reciprocal.append(1.0 / (hit[0] + 1) if len(hit) else 0.0)
    assert np.mean(reciprocal) >= 0.9  # 0.97 measured; a broken segmenter falls far below


def test_mixed_chinese_and_english() -> None:
    tokens = Analyzer().tokens("我们使用BERT模型进行NLP任务，准确率达到95.5%。Models were trained.")
    assert "bert" in tokens and "nlp" in tokens and "model" in tokens and "train" in tokens
    assert "模型" in tokens and "任务" in tokens
    assert "95" in tokens  # digits follow the \w\w+ rule
    assert not any("，" in t or "。" in t for t in tokens)


def test_single_character_chinese_words_are_kept() -> None:
    tokens = Analyzer().tokens("他在北京住了三年")
    assert "他" in tokens and "在" in tokens


def test_kana_and_hangul_become_bigrams() -> None:
    analyzer = Analyzer()
    assert analyzer.tokens("ありがとう") == ["あり", "りが", "がと", "とう"]
    assert analyzer.tokens("안녕하세요 세계") == ["안녕", "녕하", "하세", "세요", "세계"]
    assert analyzer.tokens("東京に行く")[:1] == ["東京"]
    assert char_bigrams("の") == ["の"] and char_bigrams("") == []


def test_bigram_mode_needs_no_segmenter() -> None:
    assert Analyzer(cjk="bigram").tokens("中国大陆") == ["中国", "国大", "大陆"]


def test_jieba_is_the_fallback_when_rjieba_is_missing(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("jieba", reason="jieba not installed")
    paragraphs, _ = cmrc(data_dir)
    with_rjieba = Analyzer().tokens(paragraphs[0])
    monkeypatch.setitem(sys.modules, "rjieba", None)  # makes `import rjieba` fail
    without = Analyzer().tokens(paragraphs[0])
    assert all(t in paragraphs[0].lower() for t in without if CJK.search(t))
    overlap = len(set(with_rjieba) & set(without)) / len(set(with_rjieba))
    assert overlap > 0.8  # both use jieba's dictionary


def test_config_round_trip_and_validation() -> None:
    analyzer = Analyzer(stopwords=None, stemmer="german", cjk="bigram")
    data = analyzer.to_dict()
    assert json.loads(json.dumps(data)) == data  # storable as JSON
    assert Analyzer.from_dict(data) == analyzer
    assert Analyzer.from_dict(data).tokens("Häuser und Bäume") == analyzer.tokens(
        "Häuser und Bäume"
    )
    assert Analyzer() != analyzer
    with pytest.raises(ConfigError):
        Analyzer(stemmer="klingon")
    with pytest.raises(ConfigError):
        Analyzer(stopwords="xx")
    with pytest.raises(ConfigError):
        Analyzer(cjk="mecab")
    with pytest.raises(ConfigError):
        Analyzer.from_dict({**data, "shingles": 2})
    with pytest.raises(ConfigError):
        Analyzer.from_dict({**data, "version": 99})


def test_terms_stay_right_when_the_word_cache_starts_over_under_threads(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import mmrag.index.analyzer as analyzer_module

    texts = scifact_texts(data_dir, 300)
    want = [Analyzer().tokens(t) for t in texts]
    monkeypatch.setattr(analyzer_module, "_MAX_CACHED_WORDS", 50)  # cleared all the time
    shared = Analyzer()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(shared.tokens, texts * 3))
    assert got == want * 3
