"""Indexing throughput on SciFact, against the bare encoder and bm25s in the same run.

    .venv/bin/python bench/indexing.py [--data ../shared/data] [--docs N] [--rounds R]
                                       [--parts a,b,...] [--profile]

Every part runs in a fresh process (models loaded before the clock starts, peak RSS its
own). Parts run in turn, round after round, so a busy spell on this shared machine hits
the bare encoder and the index path alike; each ratio pairs the two parts of one round
and the JSON keeps every round, the median, and the load average around each part.

- bare_st: plain sentence-transformers `encode` (its defaults) of the corpus texts, as
  mmrag's loader makes them (title, blank line, abstract), with all-MiniLM-L6-v2.
- index_*: the `mmrag index` path (Indexer.index_paths on the BEIR folder: read, parse,
  analyse, embed, SQLite, derived indexes saved) with one chunk per record, so the
  encoder sees the same texts as bare_st; `index_st_sequential` is the path before the
  pipeline (no prefetch thread, 256-chunk batches, one encode worker).
- sparse_index vs bm25s: sparse-only indexing against bm25s tokenize + index.
- --profile: cProfile per encoder, summed per phase, with the default chunking (256
  tokens) and no prefetch thread, so every phase runs in the thread cProfile sees.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing as mp
import os
import platform
import pstats
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# name -> (text encoder kind, params), as `mmrag index --encoder KIND --model NAME`
ENCODERS: dict[str, tuple[str, dict[str, Any]]] = {
    "st": ("sentence-transformers", {"model": "all-MiniLM-L6-v2"}),
    "onnx_minilm": ("onnx", {"model": "all-MiniLM-L6-v2-int8"}),
    "onnx_bge": ("onnx", {"model": "bge-small-en-v1.5"}),
}
# part -> (encoder or None, ORT threads per call, Indexer settings)
INDEX_PARTS: dict[str, tuple[str | None, int, dict[str, Any]]] = {
    # as `mmrag index` runs them: two encode workers, one thread each (torch or ORT)
    "index_st": ("st", 1, {"encode_workers": 2}),
    "index_onnx_minilm": ("onnx_minilm", 1, {"encode_workers": 2}),
    "index_onnx_bge": ("onnx_bge", 1, {"encode_workers": 2}),
    "sparse_index": (None, 1, {}),
    # the path before the pipeline: no prefetch thread, 256-chunk batches, one worker
    "index_st_sequential": ("st", 1, {"prefetch_bytes": 0, "batch_size": 256}),
    # one worker, torch keeping its own thread count (all cores)
    "index_st_1w": ("st", 1, {}),
    # thread tuning: one worker with one or two ORT threads, against two workers of one
    "index_onnx_minilm_1x1": ("onnx_minilm", 1, {}),
    "index_onnx_minilm_1x2": ("onnx_minilm", 2, {}),
    "index_onnx_bge_1x1": ("onnx_bge", 1, {}),
    "index_onnx_bge_1x2": ("onnx_bge", 2, {}),
}
DEFAULT_PARTS = [
    "bare_st",
    "index_st",
    "index_onnx_minilm",
    "sparse_index",
    "bm25s",
    "index_onnx_bge",
]
# (numerator, denominator) of each reported ratio
RATIOS = {
    "index_st_vs_bare_st": ("index_st", "bare_st"),
    "index_st_sequential_vs_bare_st": ("index_st_sequential", "bare_st"),
    "index_st_1w_vs_bare_st": ("index_st_1w", "bare_st"),
    "index_onnx_minilm_1x1_vs_bare_st": ("index_onnx_minilm_1x1", "bare_st"),
    "index_onnx_minilm_1x2_vs_bare_st": ("index_onnx_minilm_1x2", "bare_st"),
    "index_onnx_minilm_vs_bare_st": ("index_onnx_minilm", "bare_st"),
    "index_onnx_bge_vs_bare_st": ("index_onnx_bge", "bare_st"),
    "sparse_index_vs_bm25s": ("sparse_index", "bm25s"),
}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _corpus_file(data: Path, docs: int | None, tmp: Path) -> Path:
    """SciFact's corpus.jsonl, or its first `docs` records in a BEIR folder of their own."""
    source = data / "scifact"
    if docs is None:
        return source
    folder = tmp / f"scifact-{docs}"
    folder.mkdir(exist_ok=True)
    with open(source / "corpus.jsonl", "rb") as f:
        lines = [next(f) for _ in range(docs)]
    (folder / "corpus.jsonl").write_bytes(b"".join(lines))
    (folder / "queries.jsonl").write_bytes((source / "queries.jsonl").read_bytes())
    return folder


def _texts(folder: Path) -> list[str]:
    """The records' texts as mmrag's loader builds them, stripped as one-chunk records are."""
    from mmrag.ingest.files import load

    return [s.text.strip() for s in load(folder / "corpus.jsonl").sources]


def _encoder(name: str, threads: int) -> Any:
    from mmrag.models.text import load_text_encoder

    kind, params = ENCODERS[name]
    if kind == "onnx":
        params = {**params, "threads": threads}
    return load_text_encoder(kind, **params)


def _torch_threads_per_worker(workers: int) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))  # as `mmrag index` does


def _result(docs: int, chunks: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "docs": docs,
        "chunks": chunks,
        "seconds": round(seconds, 2),
        "docs_per_s": round(docs / seconds, 2),
        "peak_rss_mb": _peak_rss_mb(),
        **extra,
    }


# ---- parts, each run in a child process ------------------------------------------------


def part_bare_st(folder: str) -> dict[str, Any]:
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    from mmrag.models.resolve import resolve_model

    texts = _texts(Path(folder))
    model = SentenceTransformer(resolve_model("all-MiniLM-L6-v2"), device="cpu")
    model.encode(texts[:8])  # warm-up, as the index parts' encoders are loaded and probed
    load_before = _load()
    t0 = time.perf_counter()
    model.encode(texts)
    seconds = time.perf_counter() - t0
    return _result(
        len(texts),
        len(texts),
        seconds,
        what=f"SentenceTransformer.encode(texts) defaults, v{sentence_transformers.__version__}",
        load_before=load_before,
        load_after=_load(),
    )


def part_index(folder: str, name: str, chunk_tokens: int) -> dict[str, Any]:
    from mmrag.index.store import EmbeddedStore
    from mmrag.indexing.indexer import Indexer

    encoder_name, threads, settings = INDEX_PARTS[name]
    if encoder_name == "st" and settings.get("encode_workers", 1) > 1:
        _torch_threads_per_worker(settings["encode_workers"])
    encoder = _encoder(encoder_name, threads) if encoder_name else None
    if encoder is not None:
        encoder.encode(["warm-up"] * 8)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp) / "s") as store:
        indexer = Indexer(store, encoder, chunk_tokens=chunk_tokens, progress=False, **settings)
        load_before = _load()
        t0 = time.perf_counter()
        report = indexer.index_paths([folder])
        seconds = time.perf_counter() - t0
    sources = report.added + report.updated
    return _result(
        sources,
        report.chunks,
        seconds,
        chunks_per_s=round(report.chunks / seconds, 2),
        encoder=encoder.info() if encoder else None,
        settings={"chunk_tokens": chunk_tokens, "ort_threads": threads, **settings},
        phases={k: round(v, 2) for k, v in report.phases.items()},
        batches=report.batches,
        load_before=load_before,
        load_after=_load(),
    )


def part_bm25s(folder: str) -> dict[str, Any]:
    import bm25s
    import Stemmer

    texts = _texts(Path(folder))
    stemmer = Stemmer.Stemmer("english")
    load_before = _load()
    t0 = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    bm25s.BM25(method="lucene").index(tokens, show_progress=False)
    seconds = time.perf_counter() - t0
    return _result(
        len(texts),
        len(texts),
        seconds,
        what=f"bm25s {bm25s.__version__} tokenize (en stopwords, Snowball) + index, in memory",
        load_before=load_before,
        load_after=_load(),
    )


# which function's cumulative time is which phase of the sequential path
PROFILE_PHASES = {
    "read+parse": ("mmrag/ingest/files.py", "load"),
    "hash": ("mmrag/indexing/indexer.py", "file_hash"),
    "chunk": ("mmrag/ingest/chunking.py", "chunk_documents"),
    "analyse": ("mmrag/index/analyzer.py", "tokens"),
    "encode (workers' wall time)": ("mmrag/indexing/indexer.py", "_embed"),
    "store.write": ("mmrag/index/store.py", "write"),
    "  of which sparse add": ("mmrag/index/sparse/index.py", "add"),
    "  of which dense add": ("mmrag/index/dense.py", "add"),
    "checkpoint (save indexes)": ("mmrag/index/store.py", "checkpoint"),
}


def part_profile(folder: str, encoder_name: str, threads: int, chunk_tokens: int) -> dict:
    from mmrag.index.store import EmbeddedStore
    from mmrag.indexing.indexer import Indexer

    if encoder_name == "st":
        _torch_threads_per_worker(2)
    encoder = _encoder(encoder_name, threads)
    encoder.encode(["warm-up"] * 8)
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp) / "s") as store:
        # everything but the encode workers' insides in this thread, which cProfile sees
        indexer = Indexer(
            store,
            encoder,
            chunk_tokens=chunk_tokens,
            prefetch_bytes=0,
            encode_workers=2,
            progress=False,
        )
        load_before = _load()
        t0 = time.perf_counter()
        profiler.enable()
        report = indexer.index_paths([folder])
        profiler.disable()
        seconds = time.perf_counter() - t0
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    phases: dict[str, float] = {}
    for phase, (file, func) in PROFILE_PHASES.items():
        phases[phase] = round(
            sum(v[3] for (f, _, fn), v in stats.items() if fn == func and f.endswith(file)), 2
        )
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
    return {
        "encoder": encoder.info(),
        "chunk_tokens": chunk_tokens,
        "docs": report.added,
        "chunks": report.chunks,
        "seconds": round(seconds, 2),
        "phases_cumulative_s": phases,
        "top_self_time_s": [
            {"function": f"{Path(f).name}:{line} {fn}", "self_s": round(v[2], 2)}
            for (f, line, fn), v in top
        ],
        "load_before": load_before,
        "load_after": _load(),
    }


def _in_child(func: Any, *args: Any) -> Any:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(func, args)


def run_part(name: str, folder: Path, chunk_tokens: int) -> dict[str, Any]:
    if name == "bare_st":
        return _in_child(part_bare_st, str(folder))
    if name == "bm25s":
        return _in_child(part_bm25s, str(folder))
    return _in_child(part_index, str(folder), name, chunk_tokens)


def _ratios(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, (top, bottom) in RATIOS.items():
        per_round = [
            round(r[top]["docs_per_s"] / r[bottom]["docs_per_s"], 3)
            for r in rounds
            if top in r and bottom in r
        ]
        if per_round:
            out[label] = {"per_round": per_round, "median": round(statistics.median(per_round), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--docs", type=int, default=None, help="first N records (default all)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--parts", default=",".join(DEFAULT_PARTS))
    parser.add_argument("--threads", type=int, default=1, help="ORT threads, --profile")
    parser.add_argument("--chunk-tokens", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="cProfile, no prefetch thread")
    parser.add_argument("--out", type=Path, default=RESULTS / "indexing.json")
    args, _ = parser.parse_known_args()  # run_all passes its own arguments to every bench
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_start": _load(),
        },
        "dataset": "scifact" if args.docs is None else f"scifact, first {args.docs} records",
        "command": "bench/indexing.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)
        ),
    }
    parts = [p for p in args.parts.split(",") if p]
    with tempfile.TemporaryDirectory() as tmp:
        folder = _corpus_file(args.data, args.docs, Path(tmp))
        rounds: list[dict[str, Any]] = []
        for r in range(args.rounds):
            rounds.append({})
            for name in parts:
                print(f"round {r + 1}: {name}", flush=True)
                rounds[-1][name] = run_part(name, folder, args.chunk_tokens)
                print(f"  {rounds[-1][name]['docs_per_s']} docs/s", flush=True)
                result["rounds"] = rounds
                result["ratios"] = _ratios(rounds)
                args.out.write_text(json.dumps(result, indent=2) + "\n")
        if args.profile:
            result["profile"] = {
                # chunked as `mmrag index` chunks by default, so chunking shows
                name: _in_child(part_profile, str(folder), name, args.threads, 256)
                for name in ("st", "onnx_minilm")
            }
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    result["machine"]["load_end"] = _load()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ratios"], indent=2))


if __name__ == "__main__":
    main()
