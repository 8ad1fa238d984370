"""Ranking metrics that reproduce trec_eval: nDCG, recall, precision, reciprocal rank, AP.

Conventions (each checked against pytrec_eval and ir_measures in tests/eval/test_metrics.py):
- A run is ranked the way trec_eval ranks it: score descending, ties broken by doc id
  descending in plain string order (so "9" comes before "10"). Ranks given by the caller
  are ignored, as trec_eval ignores them.
- nDCG uses the graded judgement as the gain (not 2^rel - 1) and a log2(rank + 1)
  discount; grades <= 0 add nothing, and the ideal ranking is built from the qrels.
  The relevance threshold does not apply to nDCG (trec_eval's -l does not either).
- Recall, precision, reciprocal rank and AP count a doc as relevant when its grade is
  >= `rel_threshold` (default 1; some TREC DL papers use 2). Unjudged docs and grade 0
  are non-relevant. P@k always divides by k, even if fewer docs were retrieved.
- The evaluated queries are the queries in the qrels. A query missing from the run
  scores 0, and so does a query with no relevant docs; both count in the mean. This is
  what ir_measures reports and what trec_eval -c averages over; queries in the run but
  not in the qrels are ignored.
- One difference from ir_measures: its RR@k comes from the MS MARCO script, which
  breaks score ties by doc id ascending; we keep trec_eval's order for every metric.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrag.errors import ConfigError, IngestError, MMRagError

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


@dataclass(frozen=True, slots=True)
class MetricResult:
    """A metric's mean over the qrels' queries and its value for each of them."""

    mean: float
    per_query: dict[str, float]


@dataclass(frozen=True, slots=True)
class _Judged:
    """One query's ranking reduced to what every metric needs."""

    grades: np.ndarray  # grade of each retrieved doc in rank order, 0 when unjudged
    ideal: np.ndarray  # positive grades of the judged docs, best first
    n_relevant: int  # judged docs with grade >= the threshold


def rank_docs(scores: dict[str, float]) -> list[str]:
    """Doc ids in trec_eval order: score descending, then doc id descending."""
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    if np.isnan(values).any():
        raise MMRagError("run scores must be numbers, found NaN")
    # Python's sort is stable, also with reverse=True: sorting by id first and then by
    # score leaves equal scores in descending id order.
    by_id = sorted(scores, reverse=True)
    return sorted(by_id, key=scores.__getitem__, reverse=True)


def _judge(judgements: dict[str, int], scores: dict[str, float], threshold: int) -> _Judged:
    ranked = rank_docs(scores)
    grades = np.fromiter((judgements.get(d, 0) for d in ranked), dtype=np.int64, count=len(ranked))
    all_grades = np.fromiter(judgements.values(), dtype=np.int64, count=len(judgements))
    ideal = np.sort(all_grades[all_grades > 0])[::-1]
    return _Judged(grades, ideal, int((all_grades >= threshold).sum()))


def _discounted(gains: np.ndarray) -> float:
    return float((gains / np.log2(np.arange(2, gains.size + 2))).sum())


def _ndcg(j: _Judged, k: int | None, threshold: int) -> float:
    ideal = _discounted(j.ideal[:k].astype(np.float64))
    if ideal == 0.0:
        return 0.0
    return _discounted(np.clip(j.grades[:k], 0, None).astype(np.float64)) / ideal


def _recall(j: _Judged, k: int | None, threshold: int) -> float:
    if j.n_relevant == 0:
        return 0.0
    return int((j.grades[:k] >= threshold).sum()) / j.n_relevant


def _precision(j: _Judged, k: int | None, threshold: int) -> float:
    assert k is not None  # the parser demands a cutoff for precision
    return int((j.grades[:k] >= threshold).sum()) / k


def _reciprocal_rank(j: _Judged, k: int | None, threshold: int) -> float:
    hits = np.flatnonzero(j.grades[:k] >= threshold)
    return 1.0 / (hits[0] + 1) if hits.size else 0.0


def _average_precision(j: _Judged, k: int | None, threshold: int) -> float:
    if j.n_relevant == 0:
        return 0.0
    relevant = j.grades[:k] >= threshold
    precision_at_hits = np.cumsum(relevant)[relevant] / (np.flatnonzero(relevant) + 1)
    return float(precision_at_hits.sum()) / j.n_relevant


_MetricFn = Callable[[_Judged, int | None, int], float]

# name -> (function, whether a cutoff is required)
_METRICS: dict[str, tuple[_MetricFn, bool]] = {
    "ndcg": (_ndcg, False),
    "recall": (_recall, True),
    "r": (_recall, True),
    "precision": (_precision, True),
    "p": (_precision, True),
    "mrr": (_reciprocal_rank, False),
    "rr": (_reciprocal_rank, False),
    "map": (_average_precision, False),
    "ap": (_average_precision, False),
}
_NAME = re.compile(r"^([a-z]+)(?:@(\d+))?$")


def _parse(metric: str) -> tuple[_MetricFn, int | None]:
    match = _NAME.match(metric.strip().lower())
    entry = _METRICS.get(match.group(1)) if match else None
    if match is None or entry is None:
        raise ConfigError(
            f"unknown metric {metric!r}; use ndcg@k, recall@k, p@k, mrr@k, map (cutoff "
            "optional for ndcg, mrr and map)"
        )
    fn, needs_cutoff = entry
    k = int(match.group(2)) if match.group(2) else None
    if k is None and needs_cutoff:
        raise ConfigError(f"metric {metric!r} needs a cutoff, e.g. {match.group(1)}@10")
    if k == 0:
        raise ConfigError(f"metric {metric!r}: the cutoff must be at least 1")
    return fn, k


def evaluate_per_query(
    qrels: Qrels, run: Run, metrics: Iterable[str], rel_threshold: int = 1
) -> dict[str, MetricResult]:
    """Every named metric with its per-query values, keyed by the names as given.

    Names: "ndcg@10", "recall@100" (or "r@100"), "p@10", "mrr@10" (or "rr@10"), "map"
    (or "ap"); "ndcg", "mrr" and "map" without a cutoff use the whole run, "map@k" is
    trec_eval's map_cut.
    """
    parsed = {name: _parse(name) for name in metrics}
    per_query: dict[str, dict[str, float]] = {name: {} for name in parsed}
    for qid, judgements in qrels.items():
        judged = _judge(judgements, run.get(qid, {}), rel_threshold)
        for name, (fn, k) in parsed.items():
            per_query[name][qid] = fn(judged, k, rel_threshold)
    return {
        name: MetricResult(float(np.mean(list(values.values()))) if values else 0.0, values)
        for name, values in per_query.items()
    }


def evaluate(
    qrels: Qrels, run: Run, metrics: Sequence[str], rel_threshold: int = 1
) -> dict[str, float]:
    """Mean of each named metric over the qrels' queries (see `evaluate_per_query`)."""
    return {
        name: result.mean
        for name, result in evaluate_per_query(qrels, run, metrics, rel_threshold).items()
    }


def _one(qrels: Qrels, run: Run, metric: str, rel_threshold: int) -> MetricResult:
    return evaluate_per_query(qrels, run, [metric], rel_threshold)[metric]


def ndcg_at(qrels: Qrels, run: Run, k: int) -> MetricResult:
    """trec_eval's ndcg_cut_k (graded gains, log2 discount)."""
    return _one(qrels, run, f"ndcg@{k}", 1)


def recall_at(qrels: Qrels, run: Run, k: int, rel_threshold: int = 1) -> MetricResult:
    """trec_eval's recall_k: relevant docs in the top k over all relevant docs."""
    return _one(qrels, run, f"recall@{k}", rel_threshold)


def precision_at(qrels: Qrels, run: Run, k: int, rel_threshold: int = 1) -> MetricResult:
    """trec_eval's P_k: relevant docs in the top k over k."""
    return _one(qrels, run, f"p@{k}", rel_threshold)


def mrr_at(qrels: Qrels, run: Run, k: int, rel_threshold: int = 1) -> MetricResult:
    """Reciprocal rank of the first relevant doc in the top k (0 if none)."""
    return _one(qrels, run, f"mrr@{k}", rel_threshold)


def average_precision(qrels: Qrels, run: Run, rel_threshold: int = 1) -> MetricResult:
    """trec_eval's map over the whole run; its mean over queries is MAP."""
    return _one(qrels, run, "map", rel_threshold)


def write_trec_run(run: Run, path: str | Path, tag: str = "mmrag") -> None:
    """Write `qid Q0 docid rank score tag` lines, in trec_eval order, ranks from 1.

    Scores are written with repr() so reading the file back gives the same floats.
    """
    if not tag or any(c.isspace() for c in tag):
        raise ConfigError(f"a run tag must be one word, got {tag!r}")
    with Path(path).open("w", encoding="utf-8") as out:
        for qid, scores in run.items():
            for rank, doc_id in enumerate(rank_docs(scores), start=1):
                out.write(f"{qid} Q0 {doc_id} {rank} {float(scores[doc_id])!r} {tag}\n")


def read_trec_run(path: str | Path) -> Run:
    """Read a TREC run file (`qid Q0 docid rank score [tag]`); ranks are ignored."""
    run: Run = {}
    name = str(path)
    try:
        lines = Path(path).open(encoding="utf-8")
    except OSError as exc:
        raise IngestError(name, f"cannot read run file: {exc}") from exc
    with lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in (5, 6):
                raise IngestError(name, f"line {number}: expected 'qid Q0 docid rank score tag'")
            qid, _, doc_id, _, score = fields[:5]
            try:
                value = float(score)
            except ValueError as exc:
                raise IngestError(name, f"line {number}: score {score!r} is not a number") from exc
            if math.isnan(value):
                raise IngestError(name, f"line {number}: score is NaN")
            docs = run.setdefault(qid, {})
            if doc_id in docs:
                # trec_eval refuses duplicates too: which score counts would be a guess.
                raise IngestError(name, f"line {number}: doc {doc_id} listed twice for {qid}")
            docs[doc_id] = value
    return run


__all__ = [
    "MetricResult",
    "Qrels",
    "Run",
    "average_precision",
    "evaluate",
    "evaluate_per_query",
    "mrr_at",
    "ndcg_at",
    "precision_at",
    "rank_docs",
    "read_trec_run",
    "recall_at",
    "write_trec_run",
]
