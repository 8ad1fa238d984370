"""English text encoders on SciFact: dense and hybrid nDCG@10 and encoding speed of the
packaged ONNX INT8 encoders (BGE-small-en-v1.5, all-MiniLM-L6-v2) beside the fp32
sentence-transformers MiniLM. Writes bench/results/text_encoders.json.

    .venv/bin/python bench/text_encoders.py [--only speed|threads|quality] [--speed-texts 200]

Speed: texts/s encoding SciFact abstracts (title + text, in corpus order) through
`encode`, for ORT intra-op threads 1 and 2 and texts per ONNX call 1 and 8; the fp32
model with torch threads 1 and 2. Threads: ORT 1 against 2, in turn on the same
abstracts. Quality: the full corpus indexed once per encoder
(the cached evaluation store `mmrag eval beir` uses), all 300 test queries.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

ENCODERS: dict[str, tuple[str, dict[str, Any]]] = {
    "bge-small-en-v1.5-int8": ("onnx", {"model": "bge-small-en-v1.5"}),
    "all-MiniLM-L6-v2-int8": ("onnx", {"model": "all-MiniLM-L6-v2-int8"}),
    "all-MiniLM-L6-v2-fp32": ("sentence-transformers", {"model": "all-MiniLM-L6-v2"}),
}


def _load() -> tuple[Any, Any]:
    from mmrag.eval.datasets import load_beir
    from mmrag.eval.runner import Corpus

    beir = load_beir(ROOT.parent / "shared" / "data" / "scifact")
    corpus = Corpus(
        texts={d: v["text"] for d, v in beir.corpus.items()},
        titles={d: v.get("title", "") for d, v in beir.corpus.items()},
    )
    return beir, corpus


def _load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def speed(n_texts: int) -> dict[str, Any]:
    import torch

    from mmrag.models.text import load_text_encoder

    _, corpus = _load()
    texts = [doc.text for _, docs in corpus.records()[:n_texts] for doc in docs]
    queries = [t[:120] for t in texts[:50]]  # short, query-sized texts
    runs = []
    for label, (kind, params) in ENCODERS.items():
        if kind == "onnx":
            settings = [{"threads": t, "batch": b} for t in (1, 2) for b in (1, 8)]
        else:
            settings = [{"torch_threads": t} for t in (1, 2)]
        for setting in settings:
            if "torch_threads" in setting:
                torch.set_num_threads(setting["torch_threads"])
                encoder = load_text_encoder(kind, **params)
            else:
                encoder = load_text_encoder(kind, **params, **setting, query_threads=1)
            encoder.encode(texts[:4])  # warm-up: first-call allocations
            load_before = _load_avg()
            t0 = time.perf_counter()
            encoder.encode(texts)
            seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            for q in queries:
                encoder.encode_queries([q])
            query_ms = 1000 * (time.perf_counter() - t0) / len(queries)
            runs.append(
                {
                    "encoder": label,
                    **setting,
                    "texts": len(texts),
                    "texts_per_s": round(len(texts) / seconds, 1),
                    "query_ms": round(query_ms, 1),
                    "load_average_before": load_before,
                    "load_average_after": _load_avg(),
                }
            )
            print(runs[-1], flush=True)
    torch.set_num_threads(os.cpu_count() or 1)
    return {"runs": runs}


def threads_in_turn(rounds: int, n_texts: int) -> dict[str, Any]:
    """ORT threads 1 against 2 for document encoding, alternating round by round on the
    same abstracts, so that both see the same machine load."""
    from mmrag.models.text import load_text_encoder

    _, corpus = _load()
    texts = [doc.text for _, docs in corpus.records()[:n_texts] for doc in docs]
    out: dict[str, Any] = {"rounds": rounds, "texts": len(texts)}
    for label, (kind, params) in ENCODERS.items():
        if kind != "onnx":
            continue
        encoders = {t: load_text_encoder(kind, **params, threads=t) for t in (1, 2)}
        for encoder in encoders.values():
            encoder.encode(texts[:4])  # warm-up
        wall, cpu = dict.fromkeys(encoders, 0.0), dict.fromkeys(encoders, 0.0)
        load_before = _load_avg()
        for _ in range(rounds):
            for t, encoder in encoders.items():
                t0, c0 = time.perf_counter(), time.process_time()
                encoder.encode(texts)
                wall[t] += time.perf_counter() - t0
                cpu[t] += time.process_time() - c0
        done = rounds * len(texts)
        out[label] = {
            f"threads_{t}": {
                "texts_per_s": round(done / wall[t], 1),
                "cpu_ms_per_text": round(1000 * cpu[t] / done, 1),
            }
            for t in encoders
        }
        out[label]["load_average"] = [load_before, _load_avg()]
        print(label, out[label], flush=True)
    return out


def quality(threads: int) -> dict[str, Any]:
    from mmrag.eval.runner import cached_store, run_queries, score_run
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS

    beir, corpus = _load()
    metrics = ["ndcg@10", "recall@100", "mrr@10"]
    out: dict[str, Any] = {"docs": len(corpus.texts), "queries": len(beir.queries)}
    cache = ROOT / ".mmrag-cache" / "eval-stores"
    for label, (kind, params) in ENCODERS.items():
        extra = {"threads": threads} if kind == "onnx" else {}
        encoder = load_text_encoder(kind, **params, **extra)
        t0 = time.perf_counter()
        with cached_store(cache, "beir-scifact", corpus, encoder, show=False) as store:
            built = time.perf_counter() - t0
            entry: dict[str, Any] = {
                "encoder": encoder.info(),
                "store_open_or_build_s": round(built),
            }
            # hybrid_weighted: min-max normalised scores added with equal weights (untuned)
            for part, name, params in (
                ("dense", "dense", {}),
                ("hybrid", "hybrid", {}),
                ("hybrid_weighted", "hybrid", {"fusion": "weighted"}),
            ):
                retriever = RETRIEVERS.create(name, store=store, **params)
                run, seconds = run_queries(retriever, beir.queries, 100, show=False)
                entry[part] = score_run(beir.qrels, run, metrics, seconds, len(beir.queries))
        out[label] = entry
        print(label, json.dumps(entry), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["speed", "threads", "quality"], default=None)
    parser.add_argument("--speed-texts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="ORT threads for indexing")
    parser.add_argument("--note", default=None)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "text_encoders.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": mp.cpu_count(),
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        "note": args.note,
    }
    parts = {
        "speed": lambda: speed(args.speed_texts),
        "threads": lambda: threads_in_turn(4, 50),
        "quality": lambda: quality(args.threads),
    }
    for name, run in parts.items():
        if args.only in (None, name):
            started = time.strftime("%Y-%m-%dT%H:%M:%S")
            load = [round(x, 1) for x in os.getloadavg()]
            t0 = time.perf_counter()
            part = run()
            result[name] = {
                "started": started,
                "wall_s": round(time.perf_counter() - t0),
                # each part's own: "machine" is rewritten by every run
                "load_average_at_start": load,
                "note": args.note,
                **part,
            }
            path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
