"""Answering and serving benchmark on SciFact. Writes bench/results/serve.json.

- end-to-end `ask` latency with the default pipeline (examples/pipeline.toml), per stage
  p50/p95, in process;
- local generation speed (tokens/s) from the same runs;
- time to first token over SSE from `mmrag serve` (a subprocess on 127.0.0.1);
- /search under load: N concurrent clients for S seconds on loopback, per retriever:
  requests/s, p50/p99 latency, errors (a failed request or hits other than the same
  query got alone), CPU per request, load average before and after.

The store is SciFact indexed with the default English encoder (BGE-small INT8, ONNX),
the store bench/query_latency.py uses. Parts not run keep their earlier figures in the
JSON, so `--parts search` re-measures the load alone (generation is slow).

    .venv/bin/python bench/serve.py [--parts ask,sse,search] [--data ../shared/data]
        [--queries 30] [--clients 32] [--seconds 60] [--retrievers bm25,hybrid,dense]
        [--config examples/pipeline.toml]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"  # loopback only: the load test never leaves the machine
STORE = "SciFact, BGE-small INT8 ONNX vectors + BM25"


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 4) if values else float("nan")


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": _pct(values, 50),
        "p95": _pct(values, 95),
        "mean": round(statistics.fmean(values), 4),
    }


def scifact_store(data: Path) -> tuple[Path, dict[str, str]]:
    """The cached SciFact store (BGE-small ONNX + BM25, built once) and the test queries."""
    from mmrag.eval.datasets import load_beir
    from mmrag.eval.runner import Corpus, cached_store
    from mmrag.models.text import load_text_encoder

    beir = load_beir(data / "scifact")
    corpus = Corpus(
        texts={d: v["text"] for d, v in beir.corpus.items()},
        titles={d: v.get("title", "") for d, v in beir.corpus.items()},
    )
    cache = Path(os.environ.get("MMRAG_CACHE", ROOT / ".mmrag-cache")) / "eval-stores"
    encoder = load_text_encoder("onnx", model="bge-small-en-v1.5")  # as `mmrag index`
    with cached_store(cache, "beir-scifact", corpus, encoder, show=False) as store:
        path = store.path
    return path, beir.queries


def ask_latency(store_path: Path, config: Path, questions: list[str]) -> dict[str, Any]:
    from mmrag.index.store import EmbeddedStore
    from mmrag.pipeline import Pipeline

    per_stage: dict[str, list[float]] = {}
    total: list[float] = []
    decode_per_s: list[float] = []
    first_token: list[float] = []
    prompt_tokens: list[int] = []
    completion_tokens: list[int] = []
    citations: list[int] = []
    with EmbeddedStore(store_path, read_only=True) as store:
        pipeline = Pipeline.from_toml(config, store)
        pipeline.ask(questions[0])  # warm-up: models loaded, caches filled
        for question in questions:
            started = time.perf_counter()
            answer = pipeline.ask(question)
            total.append(time.perf_counter() - started)
            citations.append(len(answer.citations))
            for stage in answer.stages:
                per_stage.setdefault(stage.stage, []).append(stage.seconds)
                if stage.stage == "generate":
                    extra = stage.extra
                    made = extra.get("completion_tokens") or 0
                    prompt_tokens.append(extra.get("prompt_tokens") or 0)
                    completion_tokens.append(made)
                    ttft = extra.get("first_token_s")
                    if ttft is not None:
                        first_token.append(ttft)
                        if made > 1 and stage.seconds > ttft:
                            decode_per_s.append((made - 1) / (stage.seconds - ttft))
        names = dict(pipeline.names)
        lm = getattr(pipeline.generator, "lm", None)
        lm_class = f"{type(lm).__module__}.{type(lm).__name__}" if lm is not None else None
    return {
        "questions": len(questions),
        "stages": {name: _summary(v) for name, v in per_stage.items()},
        "stage_names": {s: names[s] for s in per_stage},
        "language_model": lm_class,
        "total_s": _summary(total),
        "generation": {
            "decode_tokens_per_s": round(statistics.median(decode_per_s), 2)
            if decode_per_s
            else None,
            "first_token_s": _summary(first_token) if first_token else None,
            "prompt_tokens_mean": round(statistics.fmean(prompt_tokens), 1),
            "completion_tokens_mean": round(statistics.fmean(completion_tokens), 1),
        },
        "answers_with_citations": sum(1 for c in citations if c) / len(citations),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(store_path: Path, config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`mmrag serve` as a user starts it (read-only), its output to `log`."""
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("mmrag")),
        "serve",
        "--host", HOST,
        "--port", str(port),
        "--store", str(store_path),
        "--config", str(config),
        "--read-only",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the server did not start within 120 s")


def sse_first_token(url: str, questions: list[str], max_tokens: int) -> dict[str, Any]:
    """Seconds from sending a streamed ask to its `passages` and first `token` events."""
    import httpx

    to_passages: list[float] = []
    to_token: list[float] = []
    with httpx.Client(base_url=url, timeout=300) as client:
        client.post("/api/ask", json={"question": questions[0], "max_tokens": 2})  # warm-up
        for question in questions:
            started = time.perf_counter()
            body = {"question": question, "stream": True, "max_tokens": max_tokens}
            with client.stream("POST", "/api/ask", json=body) as r:
                r.raise_for_status()
                for line in r.iter_lines():
                    if line == "event: passages":
                        to_passages.append(time.perf_counter() - started)
                    elif line == "event: token":
                        to_token.append(time.perf_counter() - started)
                        break
    return {
        "questions": len(questions),
        "passages_event_s": _summary(to_passages),
        "first_token_s": _summary(to_token),
    }


class _Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the answer.

    httpx spent 4-6 ms of CPU per request here, more than the server's bm25 search, and
    the load generator shares the server's two cores; this costs a fraction of that.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        status_line, *headers = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        length = next(
            int(h.split(b":", 1)[1]) for h in headers if h.lower().startswith(b"content-length:")
        )
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _load(
    url: str, queries: list[str], retriever: str, clients: int, seconds: float, pid: int
) -> dict[str, Any]:
    """`clients` keep-alive connections, each sending its next search as soon as the last
    one answered. Every answer is checked against the one the same query got alone before
    the load: different hits count as errors."""
    import psutil

    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors: list[str] = []
    body = {"k": 10, "retriever": retriever}
    first = _Connection(host, int(port))
    expected: dict[str, list[str]] = {}
    for query in queries:  # sequential answers, also the warm-up
        status, data = await first.post("/api/search", {**body, "query": query})
        if status != 200:
            raise RuntimeError(f"{retriever}: HTTP {status}: {data[:200]!r}")
        expected[query] = [h["id"] for h in json.loads(data)["hits"]]
    first.close()
    connections = [_Connection(host, int(port)) for _ in range(clients)]
    server = psutil.Process(pid)
    server_cpu, client_cpu = sum(server.cpu_times()[:2]), time.process_time()
    load_start = [round(x, 2) for x in os.getloadavg()]
    stop_at = time.perf_counter() + seconds

    async def worker(seed: int, conn: _Connection) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < stop_at:
            query = rng.choice(queries)
            started = time.perf_counter()
            try:
                status, data = await conn.post("/api/search", {**body, "query": query})
                if status != 200:
                    errors.append(f"HTTP {status}")
                elif [h["id"] for h in json.loads(data)["hits"]] != expected[query]:
                    errors.append("hits differ from the sequential answer")
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(type(exc).__name__)
                conn.close()
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker(i, c) for i, c in enumerate(connections)))
    wall = time.perf_counter() - began
    server_cpu = sum(server.cpu_times()[:2]) - server_cpu
    client_cpu = time.process_time() - client_cpu
    for conn in connections:
        conn.close()
    ms = [x * 1000 for x in latencies]
    n = len(latencies)
    return {
        "retriever": retriever,
        "clients": clients,
        "client": "asyncio keep-alive connections, one process on the same 2 cores",
        "seconds": round(wall, 1),
        "requests": n,
        "requests_per_s": round(n / wall, 1),
        "latency_ms": {"p50": _pct(ms, 50), "p99": _pct(ms, 99), "max": round(max(ms), 1)},
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "cpu_ms_per_request": {
            "server": round(1000 * server_cpu / n, 2),
            "client": round(1000 * client_cpu / n, 2),
        },
        "load_average_at_start": load_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "pipeline.toml")
    parser.add_argument("--queries", type=int, default=30, help="questions for ask latency")
    parser.add_argument("--sse-queries", type=int, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--parts", default="ask,sse,search", help="comma-separated: ask, sse, search"
    )
    parser.add_argument(
        "--retrievers", default="bm25,hybrid,dense", help="searched under load, in turn"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - {"ask", "sse", "search"}:
        parser.error(f"unknown parts: {', '.join(sorted(parts - {'ask', 'sse', 'search'}))}")

    store_path, queries = scifact_store(args.data)
    texts = list(queries.values())
    rng = random.Random(0)
    sample = rng.sample(texts, min(args.queries, len(texts)))
    # Parts not run this time keep their earlier figures; each part says when and on
    # what it ran.
    earlier = json.loads(args.out.read_text()) if args.out.exists() else {}
    result: dict[str, Any] = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "dataset": "scifact (test queries)",
        "config": str(args.config.relative_to(ROOT))
        if args.config.is_relative_to(ROOT)
        else str(args.config),
        **{part: earlier[part] for part in ("ask", "sse", "search_load") if part in earlier},
    }
    if "ask" in parts:
        print("ask latency …", flush=True)
        started, load = time.strftime("%Y-%m-%dT%H:%M:%S"), _load_average()
        result["ask"] = ask_latency(store_path, args.config, sample)
        result["ask"].update(started=started, store=STORE, load_average_at_start=load)
        result["ask"]["load_average_at_end"] = _load_average()
    if not parts & {"sse", "search"}:
        _write(args.out, result)
        return
    log = Path(tempfile.gettempdir()) / "mmrag-bench-serve.log"
    proc, url = start_server(store_path, args.config, log)
    try:
        if "sse" in parts:
            print("time to first token over SSE …", flush=True)
            started, load = time.strftime("%Y-%m-%dT%H:%M:%S"), _load_average()
            result["sse"] = sse_first_token(url, sample[: args.sse_queries], max_tokens=8)
            result["sse"].update(started=started, store=STORE, load_average_at_start=load)
            result["sse"]["load_average_at_end"] = _load_average()
        if "search" in parts:
            result["search_load"] = []
            for name in args.retrievers.split(","):
                print(f"/search {name}: {args.clients} clients, {args.seconds:g} s …", flush=True)
                run = _load(url, texts, name, args.clients, args.seconds, proc.pid)
                started = time.strftime("%Y-%m-%dT%H:%M:%S")
                result["search_load"].append(
                    {"started": started, "store": STORE, **asyncio.run(run)}
                )
                print(json.dumps(result["search_load"][-1]), flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    _write(args.out, result)


def _write(out: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
