"""BM25 variants and TF-IDF as small pure functions over postings, picked by name.

A variant is an idf function of (df, N) and a term-frequency function of
(tf, norm, k1, delta), where `norm` is the posting's document-length normalisation:
``1 - b + b * dl / avgdl`` for the BM25 family, the L2 norm of the document's tf-idf
vector for TF-IDF. The naming and formulas follow Kamphuis et al. (ECIR 2020), as bm25s
does, so its results and rank_bm25's are references we test against:

- ``lucene`` (default): Lucene >= 8 / bm25s "lucene": ``ln(1 + (N-df+.5)/(df+.5))`` and
  ``tf / (tf + k1*norm)``.
- ``robertson``: classic Okapi, as rank_bm25's BM25Okapi: ``ln((N-df+.5)/(df+.5))``, negative
  for terms in more than half of the documents, and ``(k1+1) tf / (tf + k1*norm)``.
  ``BM25Params.epsilon`` sets rank_bm25's floor: negative idfs become ``epsilon`` times the
  mean idf of the vocabulary.
- ``atire``: ``ln(N/df)`` and ``(k1+1) tf / (tf + k1*norm)``.
- ``bm25l``: ``ln((N+1)/(df+.5))`` and ``(k1+1)(c+delta)/(k1+c+delta)`` with ``c = tf/norm``.
- ``bm25+``: ``ln((N+1)/df)`` and ``(k1+1) tf / (tf + k1*norm) + delta``.
- ``tfidf``: scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``: ``(1 + ln tf)`` times the
  smooth idf ``ln((1+N)/(1+df)) + 1``, document and query vectors L2-normalised, so a score
  is their cosine similarity.

For bm25l and bm25+ the tf function is not zero at tf = 0: like bm25s and rank_bm25, a
query term a document lacks still adds ``idf * tf_fn(0)`` (`Variant.absent`). An inverted
index only visits documents that contain a term, so it scores ``tf_fn(tf) - absent`` per
posting and adds the query's constant ``sum(idf * absent)`` to every matching document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrag.errors import ConfigError

IdfFn = Callable[[np.ndarray, int], np.ndarray]
# (tf, norm, k1, delta): plain arithmetic, so it works on scalars and arrays alike and the
# optional numba kernel in sparse/kernel.py compiles these very functions.
TfFn = Callable[[Any, Any, float, float], Any]


@dataclass(frozen=True)
class BM25Params:
    method: str = "lucene"
    k1: float = 1.2
    b: float = 0.75
    delta: float = 0.5
    epsilon: float | None = None  # robertson only: rank_bm25's floor for negative idf

    def __post_init__(self) -> None:
        if self.method not in VARIANTS:
            raise ConfigError(
                f"unknown sparse scoring method {self.method!r}; "
                f"choose one of: {', '.join(VARIANTS)}"
            )
        if self.k1 < 0 or not 0 <= self.b <= 1 or self.delta < 0:
            raise ConfigError(f"need k1 >= 0, 0 <= b <= 1 and delta >= 0, got {self}")
        if self.epsilon is not None and self.method != "robertson":
            raise ConfigError("epsilon (the negative-idf floor) applies to method='robertson' only")

    @property
    def variant(self) -> Variant:
        return VARIANTS[self.method]


# --- idf -------------------------------------------------------------------------------


def idf_lucene(df: np.ndarray, n: int) -> np.ndarray:
    return np.log1p((n - df + 0.5) / (df + 0.5))


def idf_robertson(df: np.ndarray, n: int) -> np.ndarray:
    return np.log((n - df + 0.5) / (df + 0.5))


def idf_atire(df: np.ndarray, n: int) -> np.ndarray:
    return np.log(n / df)


def idf_bm25l(df: np.ndarray, n: int) -> np.ndarray:
    return np.log((n + 1) / (df + 0.5))


def idf_bm25plus(df: np.ndarray, n: int) -> np.ndarray:
    return np.log((n + 1) / df)


def idf_smooth(df: np.ndarray, n: int) -> np.ndarray:
    return np.log((1 + n) / (1 + df)) + 1.0


# --- term frequency --------------------------------------------------------------------


def tf_lucene(tf: Any, norm: Any, k1: float, delta: float) -> Any:
    return tf / (tf + k1 * norm)


def tf_okapi(tf: Any, norm: Any, k1: float, delta: float) -> Any:
    return tf * (k1 + 1) / (tf + k1 * norm)


def tf_bm25l(tf: Any, norm: Any, k1: float, delta: float) -> Any:
    c = tf / norm
    return (k1 + 1) * (c + delta) / (k1 + c + delta)


def tf_bm25plus(tf: Any, norm: Any, k1: float, delta: float) -> Any:
    return tf * (k1 + 1) / (tf + k1 * norm) + delta


def tf_sublinear(tf: Any, norm: Any, k1: float, delta: float) -> Any:
    return (1.0 + np.log(tf)) / norm


def sublinear(tf: np.ndarray) -> np.ndarray:
    """TF-IDF's log-scaled term frequency, also used for query term counts."""
    return 1.0 + np.log(tf)


# --- the variants ----------------------------------------------------------------------


def _no_absent(p: BM25Params) -> float:
    return 0.0


def _absent_bm25l(p: BM25Params) -> float:
    return (p.k1 + 1) * p.delta / (p.k1 + p.delta)


def _absent_bm25plus(p: BM25Params) -> float:
    return p.delta


@dataclass(frozen=True)
class Variant:
    idf: IdfFn
    tf: TfFn
    absent: Callable[[BM25Params], float] = _no_absent  # tf part of a query term a doc lacks
    cosine: bool = False  # norm is the document vector's L2 norm; query weights are normalised


VARIANTS: dict[str, Variant] = {
    "lucene": Variant(idf_lucene, tf_lucene),
    "robertson": Variant(idf_robertson, tf_okapi),
    "atire": Variant(idf_atire, tf_okapi),
    "bm25l": Variant(idf_bm25l, tf_bm25l, _absent_bm25l),
    "bm25+": Variant(idf_bm25plus, tf_bm25plus, _absent_bm25plus),
    "tfidf": Variant(idf_smooth, tf_sublinear, cosine=True),
}


def idf_of(params: BM25Params, df: np.ndarray, n: int, floor: float | None = None) -> np.ndarray:
    """Idf of terms with document frequencies `df` (all > 0) among `n` live documents.

    `floor` replaces negative values (rank_bm25's epsilon rule, see `negative_idf_floor`).
    """
    idf = params.variant.idf(np.asarray(df, dtype=np.float64), n)
    if floor is not None:
        idf = np.where(idf < 0, floor, idf)
    return idf


def negative_idf_floor(params: BM25Params, df_vocab: np.ndarray, n: int) -> float | None:
    """rank_bm25's BM25Okapi floor: epsilon times the mean idf over the live vocabulary."""
    if params.epsilon is None:
        return None
    df = df_vocab[df_vocab > 0]
    if not len(df):
        return 0.0
    return float(params.epsilon * params.variant.idf(df.astype(np.float64), n).mean())


def length_norm(lengths: np.ndarray, avgdl: float, b: float) -> np.ndarray:
    """BM25's per-document length normalisation ``1 - b + b * dl / avgdl``."""
    if avgdl <= 0:
        return np.ones(len(lengths), dtype=np.float64)
    return (1.0 - b) + b * (np.asarray(lengths, dtype=np.float64) / avgdl)


def query_weights(
    params: BM25Params, counts: np.ndarray, idf: np.ndarray, query: np.ndarray | None = None
) -> np.ndarray:
    """Weight of each distinct query term in a document's score.

    BM25: a term repeated in the query counts once per occurrence (bm25s and rank_bm25 sum
    over the query's tokens). TF-IDF: the query's own L2-normalised sublinear tf-idf vector,
    times the idf that the document side's weight also carries. Several queries can be
    done at once: `query` then gives the query number of each term (all 0 if None).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if not params.variant.cosine:
        return counts * idf
    q = sublinear(counts) * idf
    if query is None:
        query = np.zeros(len(q), dtype=np.int64)
    norms = np.sqrt(np.bincount(query, weights=q * q))[query] if len(q) else q
    return np.divide(q * idf, norms, out=np.zeros_like(q), where=norms > 0)


def posting_scores(
    params: BM25Params, tf: np.ndarray, norm: np.ndarray, weight: np.ndarray
) -> np.ndarray:
    """Each posting's contribution: query weight times (tf part minus the absent-term part)."""
    variant = params.variant
    part = variant.tf(tf, norm, params.k1, params.delta)
    absent = variant.absent(params)
    if absent:
        part = part - absent
    return weight * part


def query_constants(
    params: BM25Params, weights: np.ndarray, query: np.ndarray, n_queries: int
) -> np.ndarray:
    """What every document gets for the query terms it lacks (bm25l, bm25+; else 0)."""
    absent = params.variant.absent(params)
    if not absent:
        return np.zeros(n_queries, dtype=np.float64)
    return absent * np.bincount(query, weights=weights, minlength=n_queries)


def cosine_doc_norms(tf: np.ndarray, idf: np.ndarray, doc: np.ndarray, n_docs: int) -> np.ndarray:
    """L2 norm of each document's sublinear tf-idf vector, from its postings.

    `tf`, `idf` and `doc` are per posting (the idf of the posting's term, the position of its
    document); documents without postings get norm 1 so nothing divides by zero.
    """
    weight = sublinear(np.asarray(tf, dtype=np.float64)) * idf
    norms = np.sqrt(np.bincount(doc, weights=weight * weight, minlength=n_docs))
    norms[norms == 0] = 1.0
    return norms
