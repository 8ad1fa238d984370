"""Chunking: token limits counted with the real packaged tokenizer, overlaps, spans, CJK."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from mmrag.errors import ConfigError
from mmrag.ingest.chunking import chunk_spans, default_counter
from mmrag.models.resolve import resolve_model


@pytest.fixture(scope="module")
def reference_tokenizer() -> Tokenizer:
    """An independent copy of the MiniLM tokenizer, loaded straight from its file."""
    tok = Tokenizer.from_file(str(Path(resolve_model("all-MiniLM-L6-v2")) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


@pytest.fixture(scope="module")
def squad_text(data_dir: Path) -> str:
    data = json.loads((data_dir / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    paragraphs = [p["context"] for a in data["data"][:3] for p in a["paragraphs"]]
    return "\n\n".join(paragraphs)


@pytest.fixture(scope="module")
def cmrc_text(data_dir: Path) -> str:
    data = json.loads((data_dir / "cmrc2018" / "trial.json").read_text(encoding="utf-8"))
    paragraphs = [p["context"] for a in data["data"][:20] for p in a["paragraphs"]]
    return "\n\n".join(paragraphs)


def count(tok: Tokenizer, text: str) -> int:
    return len(tok.encode(text, add_special_tokens=False).ids)


def token_spans(tok: Tokenizer, text: str) -> list[tuple[int, int]]:
    return list(tok.encode(text, add_special_tokens=False).offsets)


def splits_word(text: str, i: int) -> bool:
    """True when position i falls between two letters/digits of one space-separated word."""
    if i <= 0 or i >= len(text):
        return False
    left, right = text[i - 1], text[i]
    return left.isascii() and right.isascii() and left.isalnum() and right.isalnum()


def test_batched_offsets_equal_one_encode_call(reference_tokenizer, squad_text):
    # The counter tokenises long text in pieces; the tokens must be exactly those of
    # encoding the whole text at once.
    text = squad_text * 2
    assert len(text) > 40_000  # several pieces
    starts, ends = default_counter().offsets(text)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == token_spans(
        reference_tokenizer, text
    )


@pytest.mark.parametrize(("max_tokens", "overlap"), [(64, 0), (128, 16), (256, 32)])
def test_sizes_overlaps_and_coverage_on_squad(reference_tokenizer, squad_text, max_tokens, overlap):
    spans = chunk_spans(squad_text, max_tokens, overlap)
    assert len(spans) > 3
    tokens = token_spans(reference_tokenizer, squad_text)
    for (a, b), (c, d) in zip(spans, spans[1:], strict=False):
        assert a < b and c < d and a < c, "chunks are in order and move forward"
        assert c <= b or not squad_text[b:c].strip(), "no text between chunks is skipped"
        shared = sum(1 for s, e in tokens if s >= c and e <= b)
        assert shared <= overlap
        if overlap:
            # The overlap starts at a word, so it may lose the pieces of one word.
            assert shared >= overlap - 6
    for a, b in spans:
        chunk = squad_text[a:b]
        assert chunk == chunk.strip()
        assert 0 < count(reference_tokenizer, chunk) <= max_tokens
        assert not splits_word(squad_text, a) and not splits_word(squad_text, b)
    covered = set()
    for a, b in spans:
        covered.update(range(a, b))
    assert all(i in covered for i, c in enumerate(squad_text) if not c.isspace())


# A sentence end the chunker would take: end mark, closers, whitespace, then no lowercase.
_EN_SENTENCE_END = re.compile(r"[.!?…][\"')\]}»”’]*\s+[^\sa-z]")
_ZH_SENTENCE_END = re.compile(r"[。！？；][”’」』）)]*.", re.S)


def assert_ends_at_sentences_when_possible(
    tok: Tokenizer, text: str, spans: list[tuple[int, int]], max_tokens: int, pattern: re.Pattern
) -> float:
    """A chunk not ending at a sentence has none in its window's last fifth; returns the share."""
    tail_start = math.ceil(max_tokens * 0.8) - 1  # the token left of the first boundary searched
    at_sentence = 0
    for a, b in spans[:-1]:
        chunk = text[a:b]
        if pattern.match(chunk + "\n\nX", len(chunk.rstrip("\"')]}»”’」』）")) - 1):
            at_sentence += 1
            continue
        offsets = token_spans(tok, chunk)
        assert len(offsets) > tail_start, "only a (nearly) full window ends mid-sentence"
        tail = chunk[offsets[tail_start][0] :]
        assert not pattern.search(tail), f"missed a sentence end in {tail!r}"
    return at_sentence / max(1, len(spans) - 1)


def test_prefers_sentence_ends_in_the_last_fifth(reference_tokenizer, squad_text):
    spans = chunk_spans(squad_text, 128, 16)
    share = assert_ends_at_sentences_when_possible(
        reference_tokenizer, squad_text, spans, 128, _EN_SENTENCE_END
    )
    # Fixed windows of 128 tokens would end at a sentence about 1 time in 25.
    assert share > 0.5


def test_short_text_is_one_chunk_and_blank_text_none():
    text = "  The Rosetta spacecraft reached comet 67P in August 2014.\n"
    assert chunk_spans(text, 256, 32) == [(2, len(text) - 1)]
    assert chunk_spans("   \n\t ", 256, 32) == []
    assert chunk_spans("", 256, 32) == []


def test_zero_max_tokens_means_one_chunk_per_text(squad_text):
    assert chunk_spans(squad_text, 0, 0) == [(0, len(squad_text))]


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError):
        chunk_spans("some text", 10, 10)
    with pytest.raises(ConfigError):
        chunk_spans("some text", -1, 0)
    with pytest.raises(ConfigError):
        chunk_spans("some text", 10, -2)


def test_chinese_chunks_keep_characters_and_prefer_full_stops(reference_tokenizer, cmrc_text):
    spans = chunk_spans(cmrc_text, 64, 8)
    assert len(spans) > 10
    for a, b in spans:
        chunk = cmrc_text[a:b]
        assert count(reference_tokenizer, chunk) <= 64
        assert chunk.encode("utf-8").decode("utf-8") == chunk
    # Chinese has no spaces: a cut between two characters is allowed, a full stop preferred.
    share = assert_ends_at_sentences_when_possible(
        reference_tokenizer, cmrc_text, spans, 64, _ZH_SENTENCE_END
    )
    assert share > 0.3


def test_no_chunk_splits_a_grapheme(reference_tokenizer):
    # Combining accents and zero-width joiners produce no token of their own in BERT's
    # tokenizer; they must stay with the character they belong to.
    unit = "Cafe\u0301 cre\u0300me bru\u0302le\u0301e 👩\u200d👩\u200d👧 👍\U0001f3fd. "
    text = unit * 200
    spans = chunk_spans(text, 32, 4)
    assert len(spans) > 10
    for a, b in spans:
        chunk = text[a:b]
        assert count(reference_tokenizer, chunk) <= 32
        assert not unicodedata.combining(chunk[0]) and chunk[0] != "\u200d"
        assert chunk[-1] != "\u200d"
        assert b == len(text) or not unicodedata.combining(text[b])


def test_text_without_word_boundaries_is_still_cut_within_the_limit(reference_tokenizer):
    # A long run with no spaces (a URL) leaves no clean place to cut: chunks are cut
    # between tokens and re-counted on their own.
    url = "https://example.org/" + "/".join(f"part{n}-x_{n * 7}" for n in range(300))
    text = f"The archive lives at {url} and nowhere else."
    spans = chunk_spans(text, 50, 10)
    assert len(spans) > 5
    for a, b in spans:
        assert count(reference_tokenizer, text[a:b]) <= 50
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_markdown_and_code_text_keeps_every_character(reference_tokenizer):
    text = (Path(__file__).resolve().parents[2] / "examples/corpus/bm25-ranking.md").read_text()
    spans = chunk_spans(text, 48, 8)
    rebuilt = "".join(text[a:b] for a, b in _dedup(spans))
    assert re.sub(r"\s+", "", rebuilt) == re.sub(r"\s+", "", text)


def _dedup(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans with their overlaps removed (each character once)."""
    out, covered = [], 0
    for a, b in spans:
        out.append((max(a, covered), b))
        covered = b
    return out


def test_a_user_tokenizer_is_left_unchanged(reference_tokenizer, squad_text):
    tok = Tokenizer.from_file(str(Path(resolve_model("all-MiniLM-L6-v2")) / "tokenizer.json"))
    assert tok.truncation is not None  # the packaged file truncates at 128 tokens
    spans = chunk_spans(squad_text, 200, 20, tokenizer=tok)
    assert tok.truncation is not None
    assert max(count(reference_tokenizer, squad_text[a:b]) for a, b in spans) > 128
    assert spans == chunk_spans(squad_text, 200, 20)
