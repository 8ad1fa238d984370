"""Scale-out benchmark: SciFact through Milvus (a Milvus Lite server on loopback) against the
embedded store, and ingestion with Ray (2 workers) against the in-process engine, all
measured in the same run. Writes bench/results/scale.json.

    .venv/bin/python bench/scale.py [--quick] [--data ../shared/data]

Both stores hold the same documents and the same MiniLM vectors (copied from the
embedded store), so nDCG differences come from the search engines alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_LATENCY = 100  # queries timed one per call for p50/p95
PARTS = ["retrieval", "milvus23", "design", "ingestion"]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))  # the loopback server launchers live with the tests


def say(msg: str) -> None:
    """Phase progress on stderr: a full run takes many minutes on two cores."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def copy_into(src: Any, dst: Any, batch: int = 500) -> float:
    """Copy documents, tokens and vectors of an embedded store into another store."""
    from mmrag.index.batch import Batch, FieldVectors, SourceInfo
    from mmrag.index.fields import FieldSpec

    for name, info in src.fields().items():
        spec = FieldSpec.from_dict(info)
        dst.ensure_field(name, spec.dim, spec.identity, space=spec.space)
    hashes = {s["source_id"]: s for s in src.sources()}
    rows_docs = list(src.iter_documents())
    t0 = time.perf_counter()
    for start in range(0, len(rows_docs), batch):
        part = rows_docs[start : start + batch]
        rows = [r for r, _ in part]
        docs = [d for _, d in part]
        sources = [
            SourceInfo(source_id=d.group, content_hash=hashes[d.group]["content_hash"])
            for d in docs
        ]
        vectors = {name: FieldVectors.full(src.vectors(name, rows)) for name in src.fields()}
        dst.write(Batch(sources=sources, docs=docs, vectors=vectors))
    return time.perf_counter() - t0


def latency(fn: Callable[[int], Any], n: int) -> dict[str, float]:
    """One query per call: queries/s and p50/p95 in milliseconds."""
    fn(0)  # warm-up
    ms = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        ms.append((time.perf_counter() - t0) * 1000)
    return {
        "queries_per_s": round(1000 * n / sum(ms), 2),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


class ServerHybrid:
    """Hybrid retrieval fused by Milvus (hybrid_search with its RRF ranker)."""

    name = "milvus-hybrid"

    def __init__(self, store: Any, encoder: Any, depth: int = 100) -> None:
        self.store, self.encoder, self.depth = store, encoder, depth

    def retrieve_many(self, queries: Sequence[Any], k: int = 10) -> list[Any]:
        from mmrag.retrieve.base import as_query, to_ranked
        from mmrag.types import StageReport

        qs = [as_query(q) for q in queries]
        vecs = self.encoder.encode_queries([q.text for q in qs])
        scored = self.store.search_hybrid(
            [q.text for q in qs], {"text": vecs}, k, depth=max(k, self.depth)
        )
        return [
            to_ranked(q, s, StageReport(stage="retrieve", name=self.name))
            for q, s in zip(qs, scored, strict=True)
        ]


def retrieval(data: Path, quick: bool) -> dict[str, Any]:
    from mmrag.eval.datasets import load_beir
    from mmrag.eval.runner import Corpus, cached_store, run_queries, score_run
    from mmrag.index.bm25 import BM25Params
    from mmrag.index.milvus import MilvusStore
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS
    from tests.scale.servers import LiteServer

    beir = load_beir(data / "scifact")
    corpus = Corpus(
        texts={d: v["text"] for d, v in beir.corpus.items()},
        titles={d: v.get("title", "") for d, v in beir.corpus.items()},
    )
    queries = {q: t for q, t in beir.queries.items() if t.strip()}
    if quick:
        queries = dict(list(queries.items())[:100])
    qrels = {q: beir.qrels[q] for q in queries if q in beir.qrels}
    encoder = load_text_encoder("sentence-transformers")
    out: dict[str, Any] = {"dataset": "scifact", "docs": len(corpus.texts), "queries": len(queries)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        server = LiteServer(Path(tmp) / "lite").start()
        out["milvus_lite_start_s"] = round(time.perf_counter() - t0, 2)
        try:
            cache = ROOT / ".mmrag-cache" / "eval-stores"
            with (
                cached_store(cache, "beir-scifact", corpus, encoder, show=False) as embedded,
                MilvusStore(server.uri, "scifact", blob_dir=Path(tmp) / "blobs") as milvus,
            ):
                seconds = copy_into(embedded, milvus)
                milvus.checkpoint()
                out["milvus_server"] = milvus.caps.server
                out["milvus_write_docs_per_s"] = round(len(milvus) / seconds, 1)
                stores = {"embedded": embedded, "milvus": milvus}
                metrics = ["ndcg@10", "recall@100"]
                say(f"copied {len(milvus)} documents into {milvus.caps.server}")
                texts = list(queries.values())
                per_query: dict[str, Any] = {
                    "note": f"{N_LATENCY} queries, one per call, k=10, query encoding included"
                }
                for mode in ("bm25", "dense", "hybrid"):
                    say(f"scifact {mode}")
                    out[mode] = {}
                    for name, store in stores.items():
                        params = {"store": store}
                        if mode == "dense":
                            params["encoder"] = encoder
                        if mode == "hybrid":
                            params["retrievers"] = [
                                RETRIEVERS.create("bm25", store=store),
                                RETRIEVERS.create("dense", store=store, encoder=encoder),
                            ]
                        retriever = RETRIEVERS.create(mode, **params)
                        run, secs = run_queries(retriever, queries, 100, show=False)
                        out[mode][name] = score_run(qrels, run, metrics, secs, len(queries))
                        per_query.setdefault(name, {})[mode] = latency(
                            lambda i, r=retriever: r.retrieve(texts[i], 10), N_LATENCY
                        )
                    if mode == "hybrid":
                        server_fusion = ServerHybrid(milvus, encoder)
                        run, secs = run_queries(server_fusion, queries, 100, show=False)
                        out[mode]["milvus_server_fusion"] = score_run(
                            qrels, run, metrics, secs, len(queries)
                        )
                    gap = out[mode]["milvus"]["ndcg@10"] - out[mode]["embedded"]["ndcg@10"]
                    out[mode]["ndcg@10_gap"] = round(gap, 4)
                    out[mode]["within_0.01"] = abs(gap) <= 0.01

                out["retriever_latency"] = per_query
                # store-level latency, one query per call, query vectors encoded beforehand
                vecs = encoder.encode_queries(texts)
                p = BM25Params()
                lat: dict[str, Any] = {}
                for name, store in stores.items():
                    lat[name] = {
                        "bm25": latency(
                            lambda i, s=store: s.search_sparse([texts[i]], 10, p), N_LATENCY
                        ),
                        "dense": latency(
                            lambda i, s=store: s.search_dense("text", vecs[i : i + 1], 10),
                            N_LATENCY,
                        ),
                    }
                lat["milvus"]["hybrid_server_fusion"] = latency(
                    lambda i: milvus.search_hybrid([texts[i]], {"text": vecs[i : i + 1]}, 10),
                    N_LATENCY,
                )
                lat["note"] = f"{N_LATENCY} queries each, k=10, one per call; encoding excluded"
                out["latency"] = lat
        finally:
            server.stop()
    return out


def milvus23_dense(data: Path, quick: bool) -> dict[str, Any]:
    """Dense search on the real Milvus engine (2.3.5) with the same SciFact vectors."""
    from mmrag.eval.datasets import load_beir
    from mmrag.eval.runner import Corpus, cached_store, run_queries, score_run
    from mmrag.index.milvus import DEFAULT_DENSE_INDEX, MilvusStore
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS
    from tests.scale.servers import Milvus23Server

    beir = load_beir(data / "scifact")
    corpus = Corpus(
        texts={d: v["text"] for d, v in beir.corpus.items()},
        titles={d: v.get("title", "") for d, v in beir.corpus.items()},
    )
    queries = {q: t for q, t in beir.queries.items() if t.strip()}
    if quick:
        queries = dict(list(queries.items())[:100])
    qrels = {q: beir.qrels[q] for q in queries if q in beir.qrels}
    encoder = load_text_encoder("sentence-transformers")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        server = Milvus23Server(Path(tmp) / "m23").start()
        out["start_s"] = round(time.perf_counter() - t0, 2)
        try:
            cache = ROOT / ".mmrag-cache" / "eval-stores"
            with (
                cached_store(cache, "beir-scifact", corpus, encoder, show=False) as embedded,
                MilvusStore(server.uri, "scifact", blob_dir=Path(tmp) / "blobs") as milvus,
            ):
                seconds = copy_into(embedded, milvus)
                milvus.checkpoint()
                out["server"] = milvus.caps.server
                out["write_docs_per_s"] = round(len(milvus) / seconds, 1)
                dense = RETRIEVERS.create("dense", store=milvus, encoder=encoder)
                run, secs = run_queries(dense, queries, 100, show=False)
                out["dense"] = score_run(qrels, run, ["ndcg@10", "recall@100"], secs, len(queries))
                out["dense_index"] = milvus.dense_index
                vecs = encoder.encode_queries(list(queries.values()))
                out["dense_latency"] = latency(
                    lambda i: milvus.search_dense("text", vecs[i : i + 1], 10), N_LATENCY
                )
                # what the consistency level costs on the real engine (raw client calls)
                by_level = {}
                for level in ("Strong", "Session", "Bounded", "Eventually"):
                    by_level[level] = latency(
                        lambda i, level=level: milvus.client.search(
                            milvus.name,
                            data=vecs[i : i + 1].tolist(),
                            anns_field="vec_text",
                            limit=10,
                            search_params={"metric_type": "IP", "params": {"ef": 128}},
                            consistency_level=level,
                        ),
                        N_LATENCY,
                    )
                out["dense_latency_by_consistency"] = by_level
                # the same vectors under HNSW (what 2.4+ and Lite get by default)
                with MilvusStore(
                    server.uri,
                    "scifact_hnsw",
                    blob_dir=Path(tmp) / "blobs",
                    dense_index=DEFAULT_DENSE_INDEX,
                ) as hnsw:
                    copy_into(embedded, hnsw)
                    hnsw.checkpoint()
                    dense = RETRIEVERS.create("dense", store=hnsw, encoder=encoder)
                    run, secs = run_queries(dense, queries, 100, show=False)
                    out["dense_hnsw"] = score_run(
                        qrels, run, ["ndcg@10", "recall@100"], secs, len(queries)
                    )
                    out["dense_hnsw"]["index"] = DEFAULT_DENSE_INDEX
        finally:
            server.stop()
    return out


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around 1,000 centres: closer to real embeddings than isotropic noise,
    whose neighbours are all nearly equidistant."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    x = centres[rng.integers(0, 1000, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _ann_index(kind: str, dim: int, n: int) -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    """(index, search(queries) -> top-10 ids) for one index kind, single-threaded."""
    import faiss
    import hnswlib

    if kind == "HNSW":  # Milvus HNSW is Knowhere's hnswlib: M=16, efConstruction=200
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=n, M=16, ef_construction=200)
        index.set_num_threads(1)

        def search(q: np.ndarray) -> np.ndarray:
            index.set_ef(64)
            return index.knn_query(q, k=10, num_threads=1)[0]

        return index, search
    nlist = 128  # ~sqrt(n) for the 20k vectors measured here; nprobe 16 of them
    factory = {
        "IVF_SQ8": f"IVF{nlist},SQ8",
        "IVF_PQ": f"IVF{nlist},PQ{dim // 8}",  # m = dim/8 sub-quantisers of 8 bits
        "HNSW_SQ8": "HNSW16,SQ8",
    }[kind]
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)

    def search(q: np.ndarray) -> np.ndarray:
        if kind == "HNSW_SQ8":
            index.hnsw.efSearch = 64
        else:
            index.nprobe = 16
        return index.search(q, 10)[1]

    return index, search


def ann_footprints(n: int = 20_000) -> dict[str, Any]:
    """Bytes per vector, single-thread build and query speed and recall@10 of the index
    types the 1-billion-chunk design weighs, on clustered unit vectors of the two widths
    (text 384, image 512)."""
    import faiss

    faiss.omp_set_num_threads(1)
    out: dict[str, Any] = {"vectors": n, "queries": 300, "k": 10}
    for dim in (384, 512):
        data = _clustered(n + 300, dim, seed=dim)
        base, queries = data[:n], data[n:]
        exact = np.argsort(-(queries @ base.T), axis=1)[:, :10]
        for kind in ("HNSW", "HNSW_SQ8", "IVF_SQ8", "IVF_PQ"):
            index, search = _ann_index(kind, dim, n)
            t0 = time.perf_counter()
            if kind == "HNSW":
                index.add_items(base, num_threads=1)
            else:
                index.train(base)
                index.add(base)
            build = time.perf_counter() - t0
            with tempfile.TemporaryDirectory() as tmp:
                file = Path(tmp) / "index.bin"
                if kind == "HNSW":
                    index.save_index(str(file))
                else:
                    faiss.write_index(index, str(file))
                size = file.stat().st_size
            search(queries[:10])
            t0 = time.perf_counter()
            found = np.vstack([search(queries[i : i + 1]) for i in range(len(queries))])
            qps = len(queries) / (time.perf_counter() - t0)
            recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
            out[f"{kind}_dim{dim}"] = {
                "bytes_per_vector": round(size / n, 1),
                "raw_float32_bytes": dim * 4,
                "build_vectors_per_s_1_thread": round(n / build, 1),
                "queries_per_s_1_thread": round(qps, 1),
                "recall@10": round(float(recall), 4),
            }
    out["params"] = "HNSW M=16 efC=200 ef=64; IVF nlist=128 nprobe=16; PQ m=dim/8 x 8 bits"
    return out


def encoder_throughput(data: Path) -> dict[str, Any]:
    """Per-core speed of the two encoders a re-index runs: MiniLM on SciFact chunks, and a
    CLIP ViT-B/32 image tower (random weights: the cost does not depend on them, and no
    CLIP weights are packaged here)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from mmrag.ingest.chunking import chunk_documents
    from mmrag.ingest.files import load
    from mmrag.models.text import load_text_encoder

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            part = Path(tmp) / "scifact-200.jsonl"
            with open(data / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
                part.write_text("".join(next(f) for _ in range(200)), encoding="utf-8")
            sources = load(part).sources
        chunks = [d.text for src in sources for d in chunk_documents(src, 256, 32)]
        encoder = load_text_encoder("sentence-transformers")
        encoder.encode(chunks[:16])
        t0 = time.perf_counter()
        encoder.encode(chunks)
        text_rate = len(chunks) / (time.perf_counter() - t0)

        config = CLIPVisionConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=224,
            patch_size=32,
            projection_dim=512,
        )
        model = CLIPVisionModelWithProjection(config).eval()
        images = torch.randn(16, 3, 224, 224)
        with torch.inference_mode():
            model(pixel_values=images[:2])
            t0 = time.perf_counter()
            for _ in range(2):
                model(pixel_values=images)
            image_rate = 32 / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return {
        "minilm_chunks_per_s_1_thread": round(text_rate, 1),
        "chunks": len(chunks),
        "mean_chunk_chars": round(float(np.mean([len(c) for c in chunks])), 1),
        "clip_vit_b32_images_per_s_1_thread": round(image_rate, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def design_inputs(data: Path) -> dict[str, Any]:
    """Per-item sizes and speeds the 1-billion-chunk design in docs/scale.md scales up."""
    from mmrag.index.analyzer import Analyzer

    out: dict[str, Any] = {"ann": ann_footprints(), "encoders": encoder_throughput(data)}
    analyzer = Analyzer()
    distinct, tokens, chars = [], [], []
    with open(data / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            text = rec["title"] + "\n" + rec["text"]
            terms = analyzer.tokens(text)
            distinct.append(len(set(terms)))
            tokens.append(len(terms))
            chars.append(len(text.encode("utf-8")))
    out["scifact_terms_per_doc"] = {
        "distinct_mean": round(float(np.mean(distinct)), 1),
        "tokens_mean": round(float(np.mean(tokens)), 1),
        "utf8_bytes_mean": round(float(np.mean(chars)), 1),
    }
    return out


def ingestion(data: Path, n_docs: int) -> dict[str, Any]:
    from mmrag.index.store import EmbeddedStore
    from mmrag.indexing.config import IndexConfig
    from mmrag.indexing.indexer import Indexer
    from mmrag.indexing.ray_engine import RayOptions, index_paths_with_ray, start_ray
    from mmrag.models.text import load_text_encoder

    out: dict[str, Any] = {"corpus": f"first {n_docs} SciFact documents (one JSONL file)"}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus" / "scifact.jsonl"
        corpus.parent.mkdir()
        with open(data / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
            corpus.write_text("".join(next(f) for _ in range(n_docs)), encoding="utf-8")

        t0 = time.perf_counter()
        with EmbeddedStore(Path(tmp) / "inproc") as store:
            encoder = load_text_encoder("sentence-transformers")
            report = Indexer(store, encoder, progress=False).index_paths([corpus])
        seconds = time.perf_counter() - t0
        out["in_process"] = {
            "chunks": report.chunks,
            "seconds": round(seconds, 2),
            "chunks_per_s": round(report.chunks / seconds, 2),
            "docs_per_s": round(n_docs / seconds, 2),
        }

        t0 = time.perf_counter()
        ray = start_ray(None, 2)
        ray_start = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            with EmbeddedStore(Path(tmp) / "ray") as store:
                config = IndexConfig(text_encoder="sentence-transformers", image_encoder=None)
                report = index_paths_with_ray(
                    store, [corpus], config, options=RayOptions(workers=2)
                )
            seconds = time.perf_counter() - t0
        finally:
            ray.shutdown()
        out["ray_2_workers"] = {
            "chunks": report.chunks,
            "seconds": round(seconds, 2),
            "chunks_per_s": round(report.chunks / seconds, 2),
            "docs_per_s": round(n_docs / seconds, 2),
            "cluster_start_s": round(ray_start, 2),
        }
        out["ray_over_in_process"] = round(
            out["ray_2_workers"]["docs_per_s"] / out["in_process"]["docs_per_s"], 3
        )
        out["note"] = (
            "both include model loading (once in process; once per Ray actor, in parallel); "
            "Ray's excludes cluster start"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="100 queries, 200-doc ingestion")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    args = parser.parse_args()
    # a terminated run still stops the servers it started (their `finally` blocks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import pymilvus
    import ray

    result: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "quick": args.quick,
        "versions": {"pymilvus": pymilvus.__version__, "ray": ray.__version__},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("scale-quick.json" if args.quick else "scale.json")
    parts = args.parts.split(",")
    if parts != PARTS and path.exists():  # re-measure some parts, keep the others
        result = {**json.loads(path.read_text()), **result}

    def save() -> None:
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        path.write_text(json.dumps(result, indent=2) + "\n")

    if "retrieval" in parts:
        say("retrieval: embedded store vs Milvus Lite")
        result["retrieval"] = retrieval(args.data, args.quick)
        save()
    if "milvus23" in parts:
        say("dense search on Milvus 2.3.5")
        result["milvus_2_3_dense"] = m23 = milvus23_dense(args.data, args.quick)
        gap = m23["dense"]["ndcg@10"] - result["retrieval"]["dense"]["embedded"]["ndcg@10"]
        m23["dense_ndcg@10_gap_vs_embedded"] = round(gap, 4)
        m23["within_0.01"] = abs(gap) <= 0.01
        save()
    if "design" in parts:
        say("design inputs")
        result["design_inputs"] = design_inputs(args.data)
        save()
    if "ingestion" in parts:
        say("ingestion: in-process vs Ray")
        result["ingestion"] = ingestion(args.data, 200 if args.quick else 500)
        save()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
