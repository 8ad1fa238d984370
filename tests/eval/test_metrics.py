"""Our metrics against pytrec_eval (trec_eval itself) and ir_measures, query by query.

Runs: TREC DL19 BM25 top-100 (graded 0-3 judgements, no score ties) and two SciFact
runs made here by word overlap between claim and abstract. The integer overlap counts
tie often, also on relevant docs, so tie-breaking decides many ranks; the second run
adds seeded jitter to remove the ties. Every tenth SciFact query is left out of the
runs, and the top 100 misses some relevant docs, so misses count too.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import ir_measures
import numpy as np
import pytest
import pytrec_eval
import scipy.sparse as sp
from ir_measures import AP, RR, P, R, nDCG

from mmrag.errors import ConfigError, IngestError
from mmrag.eval.datasets import load_beir, load_dl19
from mmrag.eval.metrics import (
    Qrels,
    Run,
    average_precision,
    evaluate,
    evaluate_per_query,
    mrr_at,
    ndcg_at,
    precision_at,
    rank_docs,
    read_trec_run,
    recall_at,
    write_trec_run,
)

OURS = ["ndcg@10", "recall@100", "mrr@10", "map", "p@10", "map@10", "ndcg"]
# our name -> pytrec_eval measure ("rr@10" is derived from recip_rank, see below)
PYTREC = {
    "ndcg@10": "ndcg_cut_10",
    "recall@100": "recall_100",
    "map": "map",
    "p@10": "P_10",
    "map@10": "map_cut_10",
    "ndcg": "ndcg",
}
TOL = 1e-6


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _overlap_scores(corpus: dict[str, dict[str, str]], queries: dict[str, str]) -> np.ndarray:
    """Distinct query words found in each doc: a (docs x queries) matrix of small integers."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for row, doc in enumerate(corpus.values()):
        for word in set(_tokens(f"{doc['title']} {doc['text']}")):
            rows.append(row)
            cols.append(vocab.setdefault(word, len(vocab)))
    docs = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(corpus), len(vocab)))
    q_rows, q_cols = [], []
    for col, text in enumerate(queries.values()):
        for word in set(_tokens(text)):
            if word in vocab:
                q_rows.append(vocab[word])
                q_cols.append(col)
    q = sp.csr_matrix((np.ones(len(q_rows)), (q_rows, q_cols)), shape=(len(vocab), len(queries)))
    return (docs @ q).toarray()


@pytest.fixture(scope="module")
def scifact(data_dir: Path) -> tuple[Qrels, Run, Run]:
    """SciFact qrels, a tied overlap run and the same run with ties removed by jitter."""
    data = load_beir(data_dir / "scifact")
    scores = _overlap_scores(data.corpus, data.queries)
    doc_ids = np.array(list(data.corpus))
    rng = np.random.default_rng(0)
    tied: Run = {}
    untied: Run = {}
    for col, qid in enumerate(data.queries):
        if col % 10 == 9:
            continue  # left out of the run: must score 0
        top = np.argsort(-scores[:, col], kind="stable")[:100]
        values = scores[top, col]
        tied[qid] = {str(d): float(s) for d, s in zip(doc_ids[top], values, strict=True)}
        jitter = values + rng.uniform(0.0, 0.5, size=values.size)
        untied[qid] = {str(d): float(s) for d, s in zip(doc_ids[top], jitter, strict=True)}
    return data.qrels, tied, untied


@pytest.fixture(scope="module")
def dl19(data_dir: Path) -> tuple[Qrels, Run]:
    data = load_dl19(data_dir / "trec-dl19")
    return data.qrels, data.bm25_run()


def _pytrec(qrels: Qrels, run: Run, threshold: int) -> dict[str, dict[str, float]]:
    """pytrec_eval per query and metric (only queries in both qrels and run)."""
    measures = set(PYTREC.values()) | {"recip_rank"}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=threshold)
    out: dict[str, dict[str, float]] = {}
    for qid, values in evaluator.evaluate(run).items():
        out[qid] = {ours: values[theirs] for ours, theirs in PYTREC.items()}
        # RR@10 is RR when the first relevant doc is in the top 10, i.e. RR >= 1/10.
        rr = values["recip_rank"]
        out[qid]["mrr@10"] = rr if rr >= 0.1 - 1e-12 else 0.0
    return out


def _assert_matches_pytrec(qrels: Qrels, run: Run, threshold: int = 1) -> None:
    ours = evaluate_per_query(qrels, run, OURS, rel_threshold=threshold)
    reference = _pytrec(qrels, run, threshold)
    for metric in OURS:
        for qid in qrels:
            expected = reference[qid][metric] if qid in reference else 0.0
            got = ours[metric].per_query[qid]
            assert got == pytest.approx(expected, abs=TOL), (metric, qid)


def _assert_matches_ir_measures(
    qrels: Qrels, run: Run, measures: dict[str, object], threshold: int = 1
) -> None:
    ours = evaluate_per_query(qrels, run, list(measures), rel_threshold=threshold)
    for name, measure in measures.items():
        theirs = {r.query_id: r.value for r in ir_measures.iter_calc([measure], qrels, run)}
        assert set(theirs) == set(qrels)  # ir_measures also scores queries missing from the run
        for qid, value in theirs.items():
            assert ours[name].per_query[qid] == pytest.approx(value, abs=TOL), (name, qid)
        aggregate = ir_measures.calc_aggregate([measure], qrels, run)[measure]
        assert ours[name].mean == pytest.approx(aggregate, abs=TOL)


IR_MEASURES = {"ndcg@10": nDCG @ 10, "recall@100": R @ 100, "map": AP, "p@10": P @ 10}


def test_dl19_bm25_ndcg_at_10_is_the_published_value(dl19: tuple[Qrels, Run]) -> None:
    qrels, run = dl19
    assert round(evaluate(qrels, run, ["ndcg@10"])["ndcg@10"], 4) == 0.5058


@pytest.mark.parametrize("threshold", [1, 2])
def test_dl19_matches_pytrec_eval(dl19: tuple[Qrels, Run], threshold: int) -> None:
    _assert_matches_pytrec(*dl19, threshold=threshold)


def test_dl19_matches_ir_measures(dl19: tuple[Qrels, Run]) -> None:
    qrels, run = dl19
    _assert_matches_ir_measures(qrels, run, {**IR_MEASURES, "mrr@10": RR @ 10})
    strict = {"recall@100": R(rel=2) @ 100, "map": AP(rel=2), "p@10": P(rel=2) @ 10}
    _assert_matches_ir_measures(qrels, run, strict, threshold=2)


def test_scifact_tied_run_exercises_ties(scifact: tuple[Qrels, Run, Run]) -> None:
    qrels, tied, _ = scifact
    tied_relevant = 0
    for qid, scores in tied.items():
        values = list(scores.values())
        relevant = [d for d in qrels[qid] if d in scores]
        tied_relevant += any(values.count(scores[d]) > 1 for d in relevant)
    assert tied_relevant >= 50
    assert len(tied) == 270 and len(qrels) == 300


@pytest.mark.parametrize("which", ["tied", "untied"])
def test_scifact_matches_pytrec_eval(scifact: tuple[Qrels, Run, Run], which: str) -> None:
    qrels, tied, untied = scifact
    _assert_matches_pytrec(qrels, tied if which == "tied" else untied)


def test_scifact_matches_ir_measures(scifact: tuple[Qrels, Run, Run]) -> None:
    qrels, tied, untied = scifact
    _assert_matches_ir_measures(qrels, tied, IR_MEASURES)
    # ir_measures computes RR@k with the MS MARCO script, which breaks ties by doc id
    # ascending (trec_eval: descending), so it is compared on the run without ties.
    _assert_matches_ir_measures(qrels, untied, {**IR_MEASURES, "mrr@10": RR @ 10})


def test_ties_are_broken_by_doc_id_descending_in_string_order() -> None:
    # trec_eval compares doc ids as strings: "9" > "10", so "9" is ranked first.
    scores = {"10": 1.0, "9": 1.0, "b": 2.0, "a": 0.5}
    assert rank_docs(scores) == ["b", "9", "10", "a"]
    qrels = {"q": {"10": 1, "a": 2}}
    run = {"q": scores}
    ours = evaluate(qrels, run, ["mrr@10", "p@2", "p@3", "ndcg@3"])
    assert ours["mrr@10"] == pytest.approx(1 / 3)
    assert ours["p@2"] == 0.0 and ours["p@3"] == pytest.approx(1 / 3)
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank", "P_2", "P_3", "ndcg_cut_3"})
    theirs = reference.evaluate(run)["q"]
    assert theirs["recip_rank"] == pytest.approx(ours["mrr@10"])
    assert theirs["P_2"] == ours["p@2"] and theirs["P_3"] == pytest.approx(ours["p@3"])
    assert theirs["ndcg_cut_3"] == pytest.approx(ours["ndcg@3"])


def test_missing_queries_and_queries_without_relevant_docs_count_as_zero() -> None:
    qrels = {"judged": {"a": 2, "b": 0}, "none-relevant": {"x": 0}, "absent": {"z": 1}}
    run = {"judged": {"a": 1.0, "b": 2.0}, "none-relevant": {"x": 1.0}, "not-judged": {"a": 1.0}}
    ours = evaluate_per_query(qrels, run, ["map", "ndcg@10", "recall@10"])
    assert ours["map"].per_query == {"judged": 0.5, "none-relevant": 0.0, "absent": 0.0}
    assert ours["map"].mean == pytest.approx(0.5 / 3)
    for name, measure in {"map": AP, "ndcg@10": nDCG @ 10, "recall@10": R @ 10}.items():
        aggregate = ir_measures.calc_aggregate([measure], qrels, run)[measure]
        assert ours[name].mean == pytest.approx(aggregate)


def test_negative_grades_add_no_gain_like_trec_eval() -> None:
    qrels = {"q": {"a": -1, "b": 2, "c": 0, "d": 1}}
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}}
    ours = evaluate(qrels, run, ["ndcg@3", "ndcg"])
    theirs = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_3", "ndcg"}).evaluate(run)["q"]
    assert ours["ndcg@3"] == pytest.approx(theirs["ndcg_cut_3"])
    assert ours["ndcg"] == pytest.approx(theirs["ndcg"])
    assert ours["ndcg@3"] == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_named_functions_agree_with_evaluate(dl19: tuple[Qrels, Run]) -> None:
    qrels, run = dl19
    table = evaluate_per_query(qrels, run, ["ndcg@10", "r@100", "rr@10", "ap", "precision@10"])
    assert ndcg_at(qrels, run, 10) == table["ndcg@10"]
    assert recall_at(qrels, run, 100) == table["r@100"]
    assert mrr_at(qrels, run, 10) == table["rr@10"]
    assert average_precision(qrels, run) == table["ap"]
    assert precision_at(qrels, run, 10) == table["precision@10"]
    strict = recall_at(qrels, run, 100, rel_threshold=2)
    assert strict == evaluate_per_query(qrels, run, ["r@100"], rel_threshold=2)["r@100"]
    assert strict.per_query != table["r@100"].per_query


@pytest.mark.parametrize("name", ["ndcg@", "recall", "p", "f1@10", "ndcg@0", "map@-1"])
def test_bad_metric_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError):
        evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, [name])


def test_trec_run_round_trip(dl19: tuple[Qrels, Run], tmp_path: Path) -> None:
    qrels, run = dl19
    path = tmp_path / "bm25.run"
    write_trec_run(run, path, tag="bm25")
    back = read_trec_run(path)
    assert back == run  # same floats: scores are written with repr()
    assert back == _ir_measures_run(path)  # ir_measures parses the file the same way
    first = path.read_text().splitlines()[0].split()
    qid = first[0]
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "bm25"
    assert first[2] == rank_docs(run[qid])[0]
    assert evaluate(qrels, back, ["ndcg@10"]) == evaluate(qrels, run, ["ndcg@10"])


def _ir_measures_run(path: Path) -> Run:
    run: Run = {}
    for row in ir_measures.read_trec_run(str(path)):
        run.setdefault(row.query_id, {})[row.doc_id] = row.score
    return run


@pytest.mark.parametrize(
    "content",
    ["q1 Q0 d1 1\n", "q1 Q0 d1 1 high run\n", "q1 Q0 d1 1 2.0 run\nq1 Q0 d1 2 1.0 run\n"],
)
def test_malformed_run_files_are_ingest_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.run"
    path.write_text(content)
    with pytest.raises(IngestError):
        read_trec_run(path)
