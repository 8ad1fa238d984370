"""The long crash run: kill -9 store operations over and over, at random moments and at
every named write step, and check every invariant after each kill (tests/faults/harness.py).

    nice -n 10 .venv/bin/python bench/faults.py [--minutes 20] [--ops index,reindex,...]
                                                [--files 40] [--probe-trials 3]

Trials go round the (operation, moment) cells until the time is up, so every cell gets
about the same number; a named point an operation never reaches is dropped for it. Each
trial kills, reopens and checks, then finishes the operation and compares the store with
a run never killed. `--probe-trials` repeats the earlier probe as it was run: `mmrag
index` of 300 SciFact files with the default encoder (BGE-small), killed around its
commit, then a dense search for each stored chunk's own text; each miss is classified.
Writes bench/results/faults.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from mmrag.index.fields import FieldSpec, load_encoder  # noqa: E402
from mmrag.index.invariants import check_store, read_log  # noqa: E402
from mmrag.index.store import EmbeddedStore  # noqa: E402
from tests.faults.corpus import MARKER  # noqa: E402
from tests.faults.harness import OPERATIONS, STORE_POINTS, Workspace  # noqa: E402

RANDOM = "random"
# Trials of an operation this slow finish (and compare with a clean run) one time in 5.
FINISH_EVERY = {"ann": 5}
PROBE_K = 10


def _cells(ops: list[str]) -> list[tuple[str, str]]:
    return [(op, moment) for op in ops for moment in (RANDOM, *STORE_POINTS)]


def _summary(trials: list[dict[str, Any]], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in trials:
        cell = out.setdefault(
            t[key] or RANDOM,
            {"trials": 0, "killed": 0, "failures": 0, "lost": 0, "stale-derived": 0, "ranking": 0},
        )
        cell["trials"] += 1
        cell["killed"] += t["outcome"] == "killed"
        cell["failures"] += not t["ok"]
        for cause, n in t.get("check", {}).get("causes", {}).items():
            cell[cause] += n
    return out


def run_trials(ws: Workspace, ops: list[str], seconds: float, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    cells = _cells(ops)
    max_nth: dict[tuple[str, str], int] = {}
    dropped: set[tuple[str, str]] = set()
    trials: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        for op, moment in cells:
            if time.monotonic() >= deadline:
                break
            if (op, moment) in dropped:
                continue
            counts[op] = counts.get(op, 0) + 1
            finish = counts[op] % FINISH_EVERY.get(op, 1) == 0
            if moment == RANDOM:
                out = ws.trial(op, delay=ws.random_delay(op, rng), finish=finish)
            else:
                top = max_nth.setdefault((op, moment), 8)
                nth = rng.randint(1, top)
                out = ws.trial(op, moment, nth=nth, finish=finish)
                if out["outcome"] == "finished":  # reached fewer than nth times: no trial
                    if nth == 1:
                        dropped.add((op, moment))
                    max_nth[(op, moment)] = nth - 1
                    continue
            trials.append(out)
            if not out["ok"]:
                print("FAILED", json.dumps(out)[:2000], flush=True)
        print(f"{len(trials)} trials, {sum(not t['ok'] for t in trials)} failed", flush=True)
    return trials


def probe(ws: Workspace, trials: int, seed: int) -> dict[str, Any]:
    """The earlier probe: kill `mmrag index` on 300 files, then dense-search own texts."""
    rng = random.Random(seed)
    ref = ws.reference("index-cli")
    runs = []
    for _ in range(trials):
        # the commit and checkpoint come at the end of a run: most kills before commit nothing
        delay = rng.uniform(ref.first_write * 0.98, ref.seconds * 1.02)
        out = ws.trial("index-cli", delay=delay, finish=False)
        out["own_text_search"] = own_text_search(ws.store, read_log(ws.log))
        runs.append(out)
        print("probe", json.dumps(out)[:600], flush=True)
    return {"reference_seconds": ref.seconds, "first_write_seconds": ref.first_write, "runs": runs}


def own_text_search(store_dir: Path, log: list[dict[str, Any]]) -> dict[str, Any]:
    """Dense search (query encoding, as `mmrag search` does) for each chunk's own text;
    a chunk not in the top k is classified by the exact checks of that same store."""
    with EmbeddedStore(store_dir) as store:
        report = check_store(store, log, marker=MARKER)
        if "text" not in store.dense or not len(store):
            return {"chunks": len(store), "misses": 0, "store_ok": report.ok}
        encoder = load_encoder(FieldSpec.from_dict(store.fields()["text"]))
        rows, docs = zip(*store.iter_documents(), strict=True)
        found = [
            c.keys
            for c in store.dense_candidates(
                "text", encoder.encode_queries([d.text for d in docs]), PROBE_K
            )
        ]
        bad = {m.doc_id: m.cause for m in report.misses}
        misses = []
        for row, doc, keys in zip(rows, docs, found, strict=True):
            if row in keys[:1]:
                continue
            misses.append(
                {
                    "doc": doc.id,
                    "rank": keys.index(row) + 1 if row in keys else None,
                    "cause": bad.get(doc.id, "ranking" if report.ok else "unexplained"),
                }
            )
        return {
            "chunks": len(rows),
            "not_first": len(misses),
            "not_in_top_k": sum(1 for m in misses if m["rank"] is None),
            "store_ok": report.ok,
            "misses": misses[:20],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--ops", default=",".join(OPERATIONS))
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--probe-trials", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "faults.json")
    args = parser.parse_args()
    ops = [o for o in args.ops.split(",") if o]
    started = time.monotonic()
    result: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "machine": platform.platform(),
        "files": args.files,
        "points": STORE_POINTS,
    }
    with tempfile.TemporaryDirectory(prefix="mmrag-faults-") as tmp:
        if args.probe_trials:
            probe_ws = Workspace(
                Path(tmp) / "probe",
                args.data,
                files=300,
                max_chars=0,
                cli_options=("--image-encoder", "none", "--asr", "none"),
            )
            probe_ws.root.mkdir()
            result["probe"] = probe(probe_ws, args.probe_trials, args.seed)
        ws = Workspace(Path(tmp) / "trials", args.data, files=args.files)
        ws.root.mkdir()
        left = args.minutes * 60 - (time.monotonic() - started)
        trials = run_trials(ws, ops, left, args.seed)
    failures = [t for t in trials if not t["ok"]]
    result.update(
        seconds=round(time.monotonic() - started, 1),
        trials=len(trials),
        killed=sum(t["outcome"] == "killed" for t in trials),
        failures=len(failures),
        by_operation=_summary(trials, "op"),
        by_point=_summary(trials, "point"),
        by_operation_and_point={
            op: _summary([t for t in trials if t["op"] == op], "point") for op in ops
        },
        failed_trials=failures[:20],
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"{len(trials)} trials, {len(failures)} failures -> {args.out}")


if __name__ == "__main__":
    main()
