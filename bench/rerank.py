"""Reranking benchmark: TREC DL19 (BM25 top-100 given) and SciFact (hybrid top-100).
Writes bench/results/rerank.json.

    .venv/bin/python bench/rerank.py [--only dl19|scifact|llm|onnx|default] [--quick]

Each method reranks every query once through its real `rerank()`; its per-candidate
scores and its cost (ms, model calls, tokens per query) are cached under
.mmrag-cache/rerank-bench/, so fusions of the offline methods are scored from those
recorded scores without re-encoding. The "default" reranker has no tuned weight: it is
the ONNX cross-encoder alone, which beat every equal-weight fusion measured here and
the cross-validated weight search (the "cross_encoder_fusion" entry). Weight searches
are reported only cross-validated: on DL19 two-fold (weights tuned on one half of the
queries, scored on the other), on SciFact tuned on the even-numbered queries in sorted
id order and scored on the odd-numbered ones. The optional `default` part runs the
registered "default" reranker itself end to end (its fusion is checked equal to the
recorded-score sum in tests/rerank). LLM methods
(local SmolLM2-135M-Instruct) run on a subset of queries and a shallower depth, said in
the JSON: the full set takes hours on this CPU. The `onnx` part times the ONNX
cross-encoder by pairs per call and threads, and against the previous default in turn.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / ".mmrag-cache" / "rerank-bench"
OFFLINE = ("first-stage", "biencoder", "maxsim", "splade", "cross-encoder-onnx")
# The current default's members with the ONNX cross-encoder: the fusion the issue asks about.
CE_FUSION = ("cross-encoder-onnx", "biencoder", "splade")
GRID = (0.0, 0.25, 0.5, 1.0)

Rankings = Mapping[str, Any]  # query id -> Ranked


def collect(
    dataset: str, label: str, make: Callable[[], Any], rankings: Rankings
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Rerank every query with `make()`; scores aligned with the input hits, and cost.

    Cached per dataset, label and query set, so re-runs only score the fusions.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(" ".join(rankings).encode()).hexdigest()[:10]
    key = f"{dataset}-{label}-{len(rankings)}-{digest}"
    path = CACHE / f"{key}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return {q: np.array(v, dtype=np.float64) for q, v in saved["scores"].items()}, saved["cost"]
    reranker = make()
    scores: dict[str, np.ndarray] = {}
    seconds, calls, tokens, failed = 0.0, 0, 0, 0
    for qid, ranked in rankings.items():
        t0 = time.perf_counter()
        out = reranker.rerank(ranked)
        seconds += time.perf_counter() - t0
        report = out.reports[-1]
        calls += report.model_calls
        tokens += report.tokens
        failed += bool(report.errors)
        by_id = {h.doc.id: h.score for h in out.hits}
        scores[qid] = np.array([by_id[h.doc.id] for h in ranked.hits], dtype=np.float64)
    n = max(len(rankings), 1)
    cost = {
        "ms_per_query": round(1000 * seconds / n, 1),
        "model_calls_per_query": round(calls / n, 1),
        "tokens_per_query": round(tokens / n, 1),
        "queries_with_failures": failed,
    }
    path.write_text(
        json.dumps({"scores": {q: s.tolist() for q, s in scores.items()}, "cost": cost})
    )
    print(f"{dataset} {label}: {cost}", flush=True)
    return scores, cost


def fused_ndcg(
    rankings: Rankings,
    scores: Mapping[str, Mapping[str, np.ndarray]],
    weights: Mapping[str, float],
    qrels: Mapping[str, Mapping[str, int]],
    queries: list[str] | None = None,
) -> float:
    """nDCG@10 of the weighted sum of z-scored member scores (as FusionReranker computes),
    at the document level (best passage per source)."""
    from mmrag.eval.metrics import evaluate
    from mmrag.rerank.fusion import zscore

    run: dict[str, dict[str, float]] = {}
    for qid in queries or list(rankings):
        ranked = rankings[qid]
        total = sum(w * zscore(scores[m][qid]) for m, w in weights.items() if w)
        total = np.broadcast_to(np.asarray(total, dtype=np.float64), len(ranked.hits))
        run[qid] = {}
        for position, (hit, value) in enumerate(zip(ranked.hits, total, strict=True)):
            # ties keep the input order, as the reranker's stable sort does
            value = float(value) - position * 1e-9
            group = hit.doc.group
            run[qid][group] = max(run[qid].get(group, -np.inf), value)
    judged = {q: qrels[q] for q in run if q in qrels}
    return round(float(evaluate(judged, run, ["ndcg@10"])["ndcg@10"]), 4)


def offline_members(dataset: str, rankings: Rankings) -> tuple[dict, dict]:
    from mmrag.rerank import RERANKERS

    scores, costs = {}, {}
    for name in OFFLINE:
        scores[name], costs[name] = collect(
            dataset, name, lambda name=name: RERANKERS.create(name), rankings
        )
    return scores, costs


def methods_table(rankings, scores, costs, qrels, queries=None) -> dict[str, Any]:
    return {
        m: {"ndcg@10": fused_ndcg(rankings, scores, {m: 1.0}, qrels, queries), **costs[m]}
        for m in scores
    }


def fusion_table(rankings, scores, costs, qrels, queries=None) -> dict[str, Any]:
    """Every untuned equal-weight fusion of two or more offline members."""
    out = {}
    for size in range(2, len(OFFLINE) + 1):
        for combo in itertools.combinations(OFFLINE, size):
            out["+".join(combo)] = {
                "ndcg@10": fused_ndcg(rankings, scores, dict.fromkeys(combo, 1.0), qrels, queries),
                "ms_per_query": round(sum(costs[m]["ms_per_query"] for m in combo), 1),
            }
    return out


def scifact_rankings(data: Path, n_queries: int | None) -> tuple[dict, Any]:
    from mmrag.eval.datasets import load_beir
    from mmrag.eval.rerank import retrieve_rankings
    from mmrag.eval.runner import Corpus, cached_store
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS

    beir = load_beir(data / "scifact")
    corpus = Corpus(
        texts={d: v["text"] for d, v in beir.corpus.items()},
        titles={d: v.get("title", "") for d, v in beir.corpus.items()},
    )
    queries = {q: beir.queries[q] for q in sorted(beir.queries)[:n_queries]}
    encoder = load_text_encoder("sentence-transformers")
    with cached_store(
        ROOT / ".mmrag-cache" / "eval-stores", "beir-scifact", corpus, encoder, show=False
    ) as store:
        rankings = retrieve_rankings(RETRIEVERS.create("hybrid", store=store), queries, 100)
    return rankings, beir.qrels


def split(rankings: Rankings) -> tuple[list[str], list[str]]:
    """Tuning and held-out query ids: even and odd positions in sorted id order."""
    ids = sorted(rankings)
    return ids[0::2], ids[1::2]


def default_entry(rankings, scores, costs, qrels, queries=None) -> dict[str, Any]:
    """The shipped "default" fusion, scored from its members' recorded scores (the fusion
    test checks the reranker computes exactly this sum); its cost is its members' sum."""
    from mmrag.rerank.fusion import DEFAULT_MEMBERS, DEFAULT_WEIGHTS

    shipped = dict(zip(DEFAULT_MEMBERS, DEFAULT_WEIGHTS, strict=True))
    used = [m for m, w in shipped.items() if w]
    return {
        "weights": shipped,
        "ndcg@10": fused_ndcg(rankings, scores, shipped, qrels, queries),
        "ms_per_query": round(sum(costs[m]["ms_per_query"] for m in used), 1),
        "model_calls_per_query": round(sum(costs[m]["model_calls_per_query"] for m in used), 1),
        "tokens_per_query": round(sum(costs[m]["tokens_per_query"] for m in used), 1),
    }


def grid_search(
    rankings, scores, qrels, queries, members: tuple[str, ...] | None = None
) -> list[tuple[float, tuple[float, ...]]]:
    """Every weight combination of the members (default: all offline ones), best first;
    among equals the cheapest (fewest members), then the smallest weights."""
    members = members or OFFLINE
    grid = []
    for combo in itertools.product(GRID, repeat=len(members)):
        if any(combo):
            weights = dict(zip(members, combo, strict=True))
            grid.append((fused_ndcg(rankings, scores, weights, qrels, queries), combo))
    grid.sort(key=lambda x: (-x[0], sum(w > 0 for w in x[1]), sum(x[1])))
    return grid


def cross_validated(
    rankings, scores, qrels, members: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Two-fold cross-validation of the weight grid search: weights tuned on one half of
    the queries are scored on the other half, so no reported query tuned its own weights."""
    members = members or OFFLINE
    halves = split(rankings)
    folds, total = [], 0.0
    for tune, test in (halves, halves[::-1]):
        found = grid_search(rankings, scores, qrels, tune, members)[0][1]
        best = dict(zip(members, found, strict=True))
        ndcg = fused_ndcg(rankings, scores, best, qrels, test)
        folds.append({"tuned_on": len(tune), "weights": best, "ndcg@10_other_half": ndcg})
        total += ndcg * len([q for q in test if q in qrels])
    judged = len([q for q in rankings if q in qrels])
    full = grid_search(rankings, scores, qrels, None, members)
    return {
        "members": list(members),
        "folds": folds,
        "ndcg@10_cross_validated": round(total / judged, 4),
        "weights_tuned_on_all_queries": dict(zip(members, full[0][1], strict=True)),
        "ndcg@10_in_sample": full[0][0],
    }


def per_query_ndcg(rankings, scores, weights, qrels) -> dict[str, float]:
    return {q: fused_ndcg(rankings, scores, weights, qrels, [q]) for q in rankings if q in qrels}


def paired_difference(rankings, scores, a, b, qrels, resamples: int = 10_000) -> dict[str, Any]:
    """Mean per-query nDCG@10 difference of fusion `a` minus `b`, with a paired bootstrap
    95% interval over queries: is the gap bigger than the query sample's noise?"""
    first = per_query_ndcg(rankings, scores, a, qrels)
    second = per_query_ndcg(rankings, scores, b, qrels)
    diff = np.array([first[q] - second[q] for q in first])
    rng = np.random.default_rng(0)
    means = rng.choice(diff, (resamples, len(diff)), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "a": dict(a),
        "b": dict(b),
        "mean_difference": round(float(diff.mean()), 4),
        "bootstrap_95": [round(float(low), 4), round(float(high), 4)],
        "queries_a_better": int((diff > 0).sum()),
        "queries_b_better": int((diff < 0).sum()),
    }


def scifact(data: Path, n_queries: int | None) -> dict[str, Any]:
    rankings, qrels = scifact_rankings(data, n_queries)
    scores, costs = offline_members("scifact", rankings)
    tune, held_out = split(rankings)
    grid = grid_search(rankings, scores, qrels, tune)
    best = dict(zip(OFFLINE, grid[0][1], strict=True))
    return {
        "queries": len(rankings),
        "first_stage": "hybrid (BM25 + MiniLM dense, RRF), top 100",
        "methods_all_queries": methods_table(rankings, scores, costs, qrels),
        "held_out_queries": len(held_out),
        "methods_held_out": methods_table(rankings, scores, costs, qrels, held_out),
        "fusions_equal_weights_held_out": fusion_table(rankings, scores, costs, qrels, held_out),
        "default_all_queries": default_entry(rankings, scores, costs, qrels),
        "default_held_out": default_entry(rankings, scores, costs, qrels, held_out),
        "tuning": {
            "queries": len(tune),
            "split": "even positions of the sorted query ids (held out: odd positions)",
            "grid": list(GRID),
            "members": list(OFFLINE),
            "best_weights": best,
            "best_ndcg@10_tuning": grid[0][0],
            "best_ndcg@10_held_out": fused_ndcg(rankings, scores, best, qrels, held_out),
            "top10": [{"weights": list(c), "ndcg@10_tuning": s} for s, c in grid[:10]],
        },
    }


def dl19(data: Path, n_queries: int | None, tuned: Mapping[str, float] | None) -> dict[str, Any]:
    from mmrag.eval.datasets import load_dl19
    from mmrag.eval.rerank import dl19_rankings

    d = load_dl19(data / "trec-dl19")
    rankings = dl19_rankings(d, 100, n_queries)
    scores, costs = offline_members("dl19", rankings)
    out = {
        "queries": len(rankings),
        "first_stage": "BM25 top 100 as given",
        "methods": methods_table(rankings, scores, costs, d.qrels),
        "fusions_equal_weights": fusion_table(rankings, scores, costs, d.qrels),
    }
    out["tuning_cross_validated"] = cross_validated(rankings, scores, d.qrels)
    if all(m in scores for m in CE_FUSION):
        ce = {"cross-encoder-onnx": 1.0}
        cv = cross_validated(rankings, scores, d.qrels, CE_FUSION)
        out["cross_encoder_fusion"] = {
            "cross_validated": cv,
            "equal_weights": fused_ndcg(rankings, scores, dict.fromkeys(CE_FUSION, 1.0), d.qrels),
            "in_sample_weights_vs_alone": paired_difference(
                rankings, scores, cv["weights_tuned_on_all_queries"], ce, d.qrels
            ),
            "alone_vs_old_default": paired_difference(
                rankings, scores, ce, {"biencoder": 1.0, "splade": 1.0}, d.qrels
            ),
        }
    out["default"] = default_entry(rankings, scores, costs, d.qrels)
    if tuned:
        out["fusion_scifact_tuned"] = {
            "weights": dict(tuned),
            "ndcg@10": fused_ndcg(rankings, scores, tuned, d.qrels),
        }
    return out


def llm(
    data: Path, n_queries: int, depth: int, pair_depth: int, only: list[str] | None = None
) -> dict[str, Any]:
    from mmrag.eval.datasets import load_dl19
    from mmrag.eval.metrics import evaluate
    from mmrag.eval.rerank import dl19_rankings
    from mmrag.models.local_lm import LocalLM
    from mmrag.rerank import RERANKERS

    d = load_dl19(data / "trec-dl19")
    lm = LocalLM()
    rankings = dl19_rankings(d, 100, n_queries)
    judged = {q: d.qrels[q] for q in rankings}
    first = {q: {h.doc.id: h.score for h in r.hits} for q, r in rankings.items()}
    out: dict[str, Any] = {
        "model": lm.name,
        "queries": len(rankings),
        "note": (
            f"first {len(rankings)} DL19 queries in file order; the LLM reranks the BM25 "
            f"top {depth} (pairwise: top {pair_depth}) and the rest keeps BM25 order below"
        ),
        "first_stage_ndcg@10_same_queries": round(
            float(evaluate(judged, first, ["ndcg@10"])["ndcg@10"]), 4
        ),
    }
    methods = {
        "llm-pointwise": ("llm-pointwise", {}, depth),
        "first": ("first", {"window": min(depth, 20), "step": 10}, depth),
        "llm-listwise": ("llm-listwise", {"window": min(depth, 20), "step": 10}, depth),
        "llm-pairwise-allpairs": ("llm-pairwise", {"method": "allpairs"}, pair_depth),
        "llm-pairwise-sliding": ("llm-pairwise", {"method": "sliding", "passes": 3}, pair_depth),
    }
    for label, (name, params, rerank_depth) in methods.items():
        if only and label not in only:
            continue
        scores, cost = collect(
            f"dl19-d{rerank_depth}",
            label,
            lambda name=name, params=params, rerank_depth=rerank_depth: RERANKERS.create(
                name, lm=lm, depth=rerank_depth, **params
            ),
            rankings,
        )
        ndcg = fused_ndcg(rankings, {label: scores}, {label: 1.0}, d.qrels)
        out[label] = {"ndcg@10": ndcg, **cost, "params": params, "depth": rerank_depth}
    return out


def onnx_batching(data: Path, n_queries: int) -> dict[str, Any]:
    """The ONNX cross-encoder's cost per query (100 candidates) by pairs per call and ORT
    threads, and how far a pair's logit moves with its batch neighbours (the graph
    quantises activations per input tensor)."""
    from mmrag.eval.datasets import load_dl19
    from mmrag.eval.rerank import dl19_rankings
    from mmrag.rerank.onnx_cross_encoder import OnnxCrossEncoderReranker

    d = load_dl19(data / "trec-dl19")
    rankings = list(dl19_rankings(d, 100, n_queries).values())
    out: dict[str, Any] = {"queries": len(rankings), "candidates": 100, "runs": []}
    reference: list[np.ndarray] = []
    for threads in (1, 2):
        for batch_size in (1, 4, 16):
            reranker = OnnxCrossEncoderReranker(threads=threads, batch_size=batch_size)
            reranker.pair_scores("warm up", ["the session's first call allocates"])
            t0, c0 = time.perf_counter(), time.process_time()
            got = [reranker.pair_scores(r.query.text, [h.text for h in r.hits]) for r in rankings]
            ms = 1000 * (time.perf_counter() - t0) / len(rankings)
            # CPU time is steadier than wall time on a shared machine (it adds up threads)
            cpu_ms = 1000 * (time.process_time() - c0) / len(rankings)
            if not reference:
                reference = got
            moved = max(float(np.abs(a - b).max()) for a, b in zip(got, reference, strict=True))
            out["runs"].append(
                {
                    "threads": threads,
                    "batch_size": batch_size,
                    "ms_per_query": round(ms, 1),
                    "cpu_ms_per_query": round(cpu_ms, 1),
                    "max_logit_change_vs_threads1_batch1": round(moved, 4),
                    "load_average": round(os.getloadavg()[0], 2),
                }
            )
            print(out["runs"][-1], flush=True)
    # The previous default (bi-encoder + SPLADE-tiny) against the cross-encoder, query by
    # query in turn, so that both see the same machine load.
    from mmrag.rerank import RERANKERS

    rivals = {
        "cross-encoder-onnx": OnnxCrossEncoderReranker(),
        "biencoder+splade": RERANKERS.create("fusion", members=["biencoder", "splade"]),
    }
    for reranker in rivals.values():
        reranker.rerank(rankings[0])  # warm-up
    spent = {label: [0.0, 0.0] for label in rivals}
    for ranked in rankings:
        for label, reranker in rivals.items():
            t0, c0 = time.perf_counter(), time.process_time()
            reranker.rerank(ranked)
            spent[label][0] += time.perf_counter() - t0
            spent[label][1] += time.process_time() - c0
    out["interleaved_ms_per_query"] = {
        label: {
            "wall": round(1000 * wall / len(rankings), 1),
            "cpu": round(1000 * cpu / len(rankings), 1),
        }
        for label, (wall, cpu) in spent.items()
    }
    out["interleaved_load_average_after"] = round(os.getloadavg()[0], 2)
    print(out["interleaved_ms_per_query"], flush=True)
    return out


def default(data: Path, scifact_queries: int | None) -> dict[str, Any]:
    """The registered "default" reranker itself, end to end, through the eval API."""
    from mmrag.eval.datasets import load_dl19
    from mmrag.eval.rerank import dl19_rankings, score_reranker
    from mmrag.rerank import RERANKERS
    from mmrag.rerank.fusion import DEFAULT_MEMBERS, DEFAULT_WEIGHTS

    reranker = RERANKERS.create("default")
    d = load_dl19(data / "trec-dl19")
    on_dl19 = score_reranker(reranker, dl19_rankings(d, 100), d.qrels)
    rankings, qrels = scifact_rankings(data, scifact_queries)
    _, held_out = split(rankings)
    on_scifact = score_reranker(
        reranker, {q: rankings[q] for q in held_out}, qrels, ("ndcg@10", "recall@100")
    )
    return {
        "members": dict(zip(DEFAULT_MEMBERS, DEFAULT_WEIGHTS, strict=True)),
        "dl19": on_dl19,
        "scifact_held_out": on_scifact,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="small subsets, for development")
    parser.add_argument(
        "--only", choices=["scifact", "dl19", "llm", "onnx", "default"], default=None
    )
    parser.add_argument("--scifact-queries", type=int, default=None)
    parser.add_argument("--llm-queries", type=int, default=None)
    parser.add_argument("--llm-depth", type=int, default=20)
    parser.add_argument("--llm-methods", default=None, help="comma-separated LLM methods")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--note", default=None, help="a note on the machine, for the JSON")
    parser.add_argument("--skip", default="", help="comma-separated offline methods to leave out")
    args = parser.parse_args()
    global OFFLINE
    OFFLINE = tuple(m for m in OFFLINE if m not in args.skip.split(","))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("rerank-quick.json" if args.quick else "rerank.json")
    result = json.loads(path.read_text()) if path.exists() else {}
    result["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": mp.cpu_count(),
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        "note": args.note
        or "ms_per_query comes from the run that first scored each method (cached after)",
    }
    sci_n = args.scifact_queries or (20 if args.quick else 300)
    llm_n = args.llm_queries or (1 if args.quick else 10)

    def tuned() -> dict[str, float] | None:
        return result.get("scifact", {}).get("tuning", {}).get("best_weights")

    parts = {
        "scifact": lambda: scifact(args.data, sci_n),
        "dl19": lambda: dl19(args.data, 8 if args.quick else None, tuned()),
        "llm": lambda: llm(
            args.data,
            llm_n,
            args.llm_depth,
            10,
            args.llm_methods.split(",") if args.llm_methods else None,
        ),
        "onnx": lambda: onnx_batching(args.data, 2 if args.quick else 5),
        "default": lambda: default(args.data, sci_n),
    }
    for name, run in parts.items():
        if args.only in (None, name):
            started = time.strftime("%Y-%m-%dT%H:%M:%S")
            load = [round(x, 1) for x in os.getloadavg()]
            t0 = time.perf_counter()
            part = run()
            result[name] = {
                "started": started,
                "wall_s": round(time.perf_counter() - t0, 1),
                # each part's own: the file's "machine" entry is rewritten by every run
                "load_average_at_start": load,
                "note": args.note,
                **part,
            }
            # saved part by part, so a failure later keeps what was measured
            path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
