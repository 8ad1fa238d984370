"""Soak: `mmrag serve` on loopback under mixed traffic from 32 clients for 10 minutes.
Writes bench/results/soak.json.

The server (a subprocess, as a user runs it, with an API key) serves a copy of the
examples/corpus store (MiniLM vectors + BM25). Each client loops: mostly searches
(bm25, hybrid, the default) and some uploads of a small new text file; one client asks
instead, through the real local model (Qwen2.5-Coder-0.5B, 16 tokens; the server makes
one answer at a time, seconds each, so asks are a small share of the traffic).
Checked on every response: the status (search 200, upload 201, ask 200) and, for
searches, that the best hit comes from the document the same query found alone before
the load; after each upload, that the upload is found by its own unique word. (The
document, not the chunk: the first soak compared chunks, and 2,100 uploads moving BM25's
idf and length statistics made a neighbouring chunk of the same document rank first;
the quiet store after the run ranked them the same way.) Recorded per 30 s window:
requests, errors, p50/p99 latency per kind, the server's RSS; and the RSS drift from the
end of the first window.

    nice -n 10 .venv/bin/python bench/soak.py [--seconds 600] [--clients 32]
        [--askers 1] [--upload-share 0.06]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the cached corpus store is built by the tests' helper
RESULTS = ROOT / "bench" / "results" / "soak.json"
HOST = "127.0.0.1"
KEY = "soak-key"
CONFIG = """
[retrieve]
name = "hybrid"
k = 3

[generate]
name = "llm"
[generate.params]
model = "qwen2.5-coder-0.5b-instruct"
max_tokens = 16
max_passage_chars = 500
style = "sentence"
"""
QUERIES = [
    "how do vaccines train the immune system",
    "why are there two tides a day",
    "what does a bicycle derailleur do",
    "how does a heat pump move heat",
    "what did the Rosetta mission land on",
    "how do honeybees tell each other where flowers are",
]
QUESTIONS = ["Who invented the printing press?", "What causes the tides?"]
RETRIEVERS = ["bm25", "hybrid", None]
WINDOW = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(store: Path, config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`mmrag serve` from this checkout's source, with a key, output to `log`."""
    import httpx

    port = _free_port()
    command = [
        sys.executable, "-m", "mmrag.cli", "serve",
        "--host", HOST, "--port", str(port),
        "--store", str(store), "--config", str(config), "--api-key", KEY,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the server did not start within 180 s")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Soak:
    def __init__(self, url: str, pid: int, args: argparse.Namespace) -> None:
        import psutil

        self.url = url
        self.server = psutil.Process(pid)
        self.args = args
        self.baseline: dict[tuple[str, str | None], str] = {}
        self.samples: list[tuple[float, str, float, bool]] = []  # (t, kind, seconds, ok)
        self.errors: list[str] = []
        self.rss: list[tuple[float, float]] = []
        self.uploads = 0

    async def _search(self, client: Any, query: str, retriever: str | None) -> tuple[bool, str]:
        body: dict[str, Any] = {"query": query, "k": 3}
        if retriever:
            body["retriever"] = retriever
        r = await client.post("/api/search", json=body)
        if r.status_code != 200:
            return False, f"search {r.status_code}: {r.text[:120]}"
        hits = r.json()["hits"]
        expected = self.baseline.get((query, retriever))
        if expected is not None and (not hits or hits[0]["source_id"] != expected):
            return False, f"search {query!r} ({retriever}): best document changed"
        return True, ""

    async def _upload(self, client: Any, n: int) -> tuple[bool, str]:
        token = f"soakword{n}x{random.randrange(10**9)}"
        text = f"Soak note {token}: ferry timetables and harbour tolls, entry {n}."
        files = {"files": (f"{token}.txt", text.encode(), "text/plain")}
        r = await client.post("/api/documents", files=files)
        if r.status_code != 201:
            return False, f"upload {r.status_code}: {r.text[:120]}"
        found = await client.post("/api/search", json={"query": token, "k": 1, "retriever": "bm25"})
        hits = found.json().get("hits", []) if found.status_code == 200 else []
        if not hits or token not in hits[0]["text"]:
            return False, f"upload {token} not found right after it was stored"
        return True, ""

    async def _ask(self, client: Any) -> tuple[bool, str]:
        r = await client.post("/api/ask", json={"question": random.choice(QUESTIONS)})
        if r.status_code != 200:
            return False, f"ask {r.status_code}: {r.text[:120]}"
        answer = r.json().get("answer")
        return isinstance(answer, str), "ask without an answer"

    async def client_loop(self, client: Any, seed: int, end: float) -> None:
        """Searches and uploads; the first `askers` clients ask instead, one question at a
        time each (the server generates one answer at a time, seconds each: a share of
        random requests would only queue asks into their time limit)."""
        rng = random.Random(seed)
        asker = seed < self.args.askers
        while time.monotonic() < end:
            roll = rng.random()
            started = time.monotonic()
            try:
                if asker:
                    kind, (ok, why) = "ask", await self._ask(client)
                elif roll < self.args.upload_share:
                    self.uploads += 1
                    kind, (ok, why) = "upload", await self._upload(client, self.uploads)
                else:
                    query, retriever = rng.choice(QUERIES), rng.choice(RETRIEVERS)
                    kind, (ok, why) = "search", await self._search(client, query, retriever)
            except Exception as exc:  # noqa: BLE001 - a failed request is an error to count
                kind, ok, why = "error", False, f"{type(exc).__name__}: {exc}"
            self.samples.append((started, kind, time.monotonic() - started, ok))
            if not ok:
                self.errors.append(why)

    async def watch_rss(self, end: float) -> None:
        while time.monotonic() < end:
            self.rss.append((time.monotonic(), self.server.memory_info().rss / 2**20))
            await asyncio.sleep(5)

    async def run(self) -> dict[str, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {KEY}"}
        limits = httpx.Limits(max_connections=self.args.clients + 4)
        async with httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=300, limits=limits
        ) as client:
            for query in QUERIES:  # the results each query gets alone, before the load
                for retriever in RETRIEVERS:
                    body: dict[str, Any] = {"query": query, "k": 3}
                    if retriever:
                        body["retriever"] = retriever
                    r = await client.post("/api/search", json=body)
                    r.raise_for_status()
                    self.baseline[(query, retriever)] = r.json()["hits"][0]["source_id"]
            await self._ask(client)  # load the model before the clock starts
            self.start = time.monotonic()
            end = self.start + self.args.seconds
            await asyncio.gather(
                self.watch_rss(end),
                *(self.client_loop(client, i, end) for i in range(self.args.clients)),
            )
        return self.summary()

    def summary(self) -> dict[str, Any]:
        windows = []
        n_windows = int(self.args.seconds // WINDOW) + 1
        for w in range(n_windows):
            lo, hi = self.start + w * WINDOW, self.start + (w + 1) * WINDOW
            inside = [s for s in self.samples if lo <= s[0] < hi]
            if not inside:
                continue
            rss = [m for t, m in self.rss if lo <= t < hi]
            window: dict[str, Any] = {
                "t": round(w * WINDOW),
                "requests": len(inside),
                "errors": sum(not ok for *_, ok in inside),
                "rss_mb": round(max(rss), 1) if rss else None,
            }
            for kind in ("search", "upload", "ask"):
                lat = [s[2] for s in inside if s[1] == kind]
                if lat:
                    window[kind] = {
                        "n": len(lat),
                        "p50_ms": round(1000 * statistics.median(lat), 1),
                        "p99_ms": round(1000 * _pct(lat, 0.99), 1),
                    }
            windows.append(window)
        kinds = {}
        for kind in ("search", "upload", "ask"):
            lat = [s[2] for s in self.samples if s[1] == kind]
            kinds[kind] = {
                "requests": len(lat),
                "errors": sum(1 for s in self.samples if s[1] == kind and not s[3]),
                "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
                "p99_ms": round(1000 * _pct(lat, 0.99), 1) if lat else None,
            }
        all_lat = [s[2] for s in self.samples]
        after_warmup = [m for t, m in self.rss if t >= self.start + WINDOW] or [0.0]
        return {
            "seconds": self.args.seconds,
            "clients": self.args.clients,
            "requests": len(self.samples),
            "errors": len(self.errors),
            "first_errors": sorted(set(self.errors))[:10],
            "requests_per_s": round(len(self.samples) / self.args.seconds, 1),
            "p50_ms": round(1000 * statistics.median(all_lat), 1) if all_lat else None,
            "p99_ms": round(1000 * _pct(all_lat, 0.99), 1) if all_lat else None,
            "per_kind": kinds,
            "rss_mb": {
                "start": round(self.rss[0][1], 1) if self.rss else None,
                "after_first_window": round(after_warmup[0], 1),
                "end": round(self.rss[-1][1], 1) if self.rss else None,
                "max": round(max(m for _, m in self.rss), 1) if self.rss else None,
                "drift_after_first_window": round(self.rss[-1][1] - after_warmup[0], 1)
                if self.rss
                else None,
            },
            "windows": windows,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--askers", type=int, default=1, help="clients that only ask")
    parser.add_argument("--upload-share", type=float, default=0.06)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from tests.corpus_store import corpus_store

    cache = Path(os.environ.get("MMRAG_CACHE", ROOT / ".mmrag-cache"))
    folder = Path(tempfile.mkdtemp(prefix="mmrag-soak-"))
    store = corpus_store(cache, folder / "store")
    config = folder / "pipeline.toml"
    config.write_text(CONFIG)
    log = folder / "server.log"
    proc, url = start_server(store, config, log)
    try:
        result = asyncio.run(Soak(url, proc.pid, args).run())
    finally:
        proc.terminate()
        proc.wait(30)
    result = {
        "command": " ".join(["bench/soak.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_after": list(os.getloadavg()),
        "server_log_tail": log.read_text(errors="replace").splitlines()[-5:],
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: result[k] for k in ("requests", "errors", "requests_per_s", "p99_ms", "rss_mb")}
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
