"""Text analysis for the sparse index: text -> list of index terms.

Latin (and any other space-separated) script follows the scikit-learn / bm25s recipe:
lowercase, the token pattern ``\\b\\w\\w+\\b``, drop English stopwords, Snowball stemming.
Chinese, Japanese and Korean have no spaces between words, so the text is first cut into
script runs and each CJK run is handled on its own: Han runs are segmented into words
(rjieba, else jieba, or character bigrams), kana and Hangul runs become character bigrams.
Detecting the script per run is what keeps mixed Chinese/English text intact.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from typing import Any

from mmrag.errors import ConfigError, MissingDependency

# Bumped whenever a change here would give other terms for the same text, so a store
# built with older rules is detected instead of silently mixing two vocabularies.
ANALYZER_VERSION = 1

# Lucene's classic English stop set, the list bm25s uses for stopwords="en": keeping the
# same list makes parity tests against bm25s exact and keeps BM25 recall-friendly
# (long stop lists hurt phrase-like queries more than they help).
ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the
    their then there these they this to was will with""".split()
)

STOPWORD_LISTS: dict[str, frozenset[str]] = {"en": ENGLISH_STOPWORDS}
CJK_MODES = ("jieba", "bigram")
# words whose terms are remembered (about 100 MB at most); past it the cache starts over
_MAX_CACHED_WORDS = 1_000_000

_WORD = re.compile(r"(?u)\b\w\w+\b")
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KANA = r"\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HANGUL = r"\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff"
_CJK_RUN = re.compile(f"(?P<han>[{_HAN}]+)|(?P<kana>[{_KANA}]+)|(?P<hangul>[{_HANGUL}]+)")


def char_bigrams(run: str) -> list[str]:
    """Overlapping character bigrams; a one-character run is kept as itself."""
    if len(run) < 2:
        return [run] if run else []
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _han_segmenter(mode: str) -> Callable[[str], list[str]]:
    if mode == "bigram":
        return char_bigrams
    try:
        import rjieba

        return rjieba.cut
    except ImportError:
        pass
    try:
        import jieba
    except ImportError as exc:
        raise MissingDependency(
            "Chinese word segmentation needs rjieba or jieba: pip install rjieba "
            "(or use Analyzer(cjk='bigram'))"
        ) from exc
    jieba.setLogLevel(60)  # jieba logs its dictionary loading at INFO on first use
    return jieba.lcut


class Analyzer:
    """Turns text into index terms; its config is persisted with a store and compared on open."""

    def __init__(
        self,
        lowercase: bool = True,
        stopwords: str | None = "en",
        stemmer: str | None = "english",
        cjk: str = "jieba",
    ) -> None:
        if stopwords is not None and stopwords not in STOPWORD_LISTS:
            raise ConfigError(
                f"unknown stopword list {stopwords!r}; "
                f"choose one of: {', '.join(STOPWORD_LISTS)} or None"
            )
        if cjk not in CJK_MODES:
            raise ConfigError(f"unknown cjk mode {cjk!r}; choose one of: {', '.join(CJK_MODES)}")
        if stemmer is not None:
            import Stemmer

            if stemmer not in Stemmer.algorithms():
                raise ConfigError(
                    f"unknown stemmer {stemmer!r}; "
                    f"PyStemmer offers: {', '.join(Stemmer.algorithms())}"
                )
        self.lowercase = lowercase
        self.stopwords = stopwords
        self.stemmer = stemmer
        self.cjk = cjk
        self._stop: frozenset[str] = STOPWORD_LISTS[stopwords] if stopwords else frozenset()
        self._terms: dict[str, str] = {}  # word -> its term, "" for a stopword

    @cached_property
    def _stem_words(self) -> Callable[[list[str]], list[str]] | None:
        if self.stemmer is None:
            return None
        import Stemmer

        return Stemmer.Stemmer(self.stemmer).stemWords

    @cached_property
    def _segment_han(self) -> Callable[[str], list[str]]:
        return _han_segmenter(self.cjk)

    def tokens(self, text: str) -> list[str]:
        """The index terms of `text`, in order (duplicates kept: they are term frequencies)."""
        if not text:
            return []
        # isascii is a flag CPython keeps on the string; the CJK regex scans it all
        if text.isascii() or _CJK_RUN.search(text) is None:
            return self._words(text)
        out: list[str] = []
        last = 0
        for match in _CJK_RUN.finditer(text):
            if match.start() > last:
                out.extend(self._words(text[last : match.start()]))
            run = match.group()
            if match.lastgroup == "han":
                # A run holds only Han characters, so the segmenter never sees punctuation
                # or spaces; single-character words stay: in Chinese they carry meaning.
                out.extend(w for w in self._segment_han(run) if w.strip())
            else:
                out.extend(char_bigrams(run))
            last = match.end()
        if last < len(text):
            out.extend(self._words(text[last:]))
        return out

    def _words(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        words = _WORD.findall(text)
        terms = self._terms
        try:
            return [t for t in map(terms.__getitem__, words) if t]
        except KeyError:
            known = self._learn(words)
            return [t for t in map(known.__getitem__, words) if t]

    def _learn(self, words: list[str]) -> dict[str, str]:
        """The words' terms, also kept in the cache: each distinct word is stemmed once
        (a corpus repeats its words: SciFact's 812k tokens hold 30k distinct ones), ""
        for a stopword, checked before stemming on the lowercased word as bm25s and
        Lucene do. The returned map is the caller's own, so another thread starting the
        cache over cannot lose a word."""
        terms = self._terms
        if len(terms) > _MAX_CACHED_WORDS:
            terms.clear()
        distinct = list(dict.fromkeys(words))
        new = [w for w in distinct if w not in terms and w not in self._stop]
        stem = self._stem_words
        known = dict(zip(new, stem(new) if stem is not None and new else new, strict=True))
        known.update((w, "") for w in distinct if w in self._stop)
        terms.update(known)
        for w in distinct:
            if w not in known:
                known[w] = terms.get(w) or self._term(w)
        return known

    def _term(self, word: str) -> str:
        if word in self._stop:
            return ""
        stem = self._stem_words
        return stem([word])[0] if stem is not None else word

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": ANALYZER_VERSION,
            "lowercase": self.lowercase,
            "stopwords": self.stopwords,
            "stemmer": self.stemmer,
            "cjk": self.cjk,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analyzer:
        config = dict(data)
        version = config.pop("version", ANALYZER_VERSION)
        if version != ANALYZER_VERSION:
            raise ConfigError(
                f"analyzer version {version} is not supported (this mmrag has {ANALYZER_VERSION}); "
                "rebuild the index"
            )
        unknown = set(config) - {"lowercase", "stopwords", "stemmer", "cjk"}
        if unknown:
            raise ConfigError(f"unknown analyzer settings: {', '.join(sorted(unknown))}")
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Analyzer) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "version")
        return f"Analyzer({args})"
