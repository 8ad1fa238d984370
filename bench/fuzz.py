"""The long fuzz run: every loader on mutated real files, the filter parser, the full-size
bombs in child processes, and schemathesis over the server. Writes bench/results/fuzz.json.

Per loader: executions, inputs loaded, inputs refused (IngestError, the contract allows
it), failures (any other exception, or a load holding nothing) with the first few
reasons. Per bomb: outcome and peak RSS above the child's baseline. Per server
operation: calls, statuses, 5xx. Hypothesis runs at random here (the quick tests in
tests/fuzz/ are derandomised), so each run explores new inputs.

    nice -n 10 .venv/bin/python bench/fuzz.py [--examples 3000] [--audio-examples 150]
        [--parts loaders,filters,bombs,server] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the seeds, mutators and bombs live with the tests
RESULTS = ROOT / "bench" / "results" / "fuzz.json"


def fuzz_loaders(data: Path, examples: int, audio_examples: int) -> dict[str, Any]:
    from hypothesis import HealthCheck, given, settings

    from mmrag.errors import IngestError
    from tests.fuzz.mutate import mutants
    from tests.fuzz.seeds import seeds
    from tests.fuzz.targets import check_loaded, run, targets, write_input

    out: dict[str, Any] = {}
    for name, target in targets().items():
        counts = {"executions": 0, "loaded": 0, "refused": 0, "failures": 0}
        reasons: dict[str, int] = {}
        failures: list[str] = []
        folder = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))

        @settings(
            max_examples=audio_examples if name == "audio" else examples,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(mutants(seeds(target.seeds_of, data)))
        def fuzz(data_: bytes) -> None:
            counts["executions"] += 1  # noqa: B023 - called within this iteration
            try:
                loaded = run(target, write_input(target, data_, folder, data))  # noqa: B023
                check_loaded(loaded)
            except Exception as exc:  # noqa: BLE001 - a failure is recorded, the run goes on
                counts["failures"] += 1  # noqa: B023
                failures.append(f"{type(exc).__name__}: {exc}"[:300])  # noqa: B023
                return
            if isinstance(loaded, IngestError):
                counts["refused"] += 1  # noqa: B023
                key = loaded.reason.split(":")[0][:60]
                reasons[key] = reasons.get(key, 0) + 1  # noqa: B023
            else:
                counts["loaded"] += 1  # noqa: B023

        started = time.perf_counter()
        fuzz()
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:8]
        out[name] = {
            **counts,
            "seconds": round(time.perf_counter() - started, 1),
            "top_refusals": dict(top),
            "first_failures": sorted(set(failures))[:5],
        }
        print(name, json.dumps(out[name]), flush=True)
    return out


def fuzz_filters(examples: int) -> dict[str, Any]:
    from hypothesis import HealthCheck, given, settings

    from mmrag.errors import ConfigError
    from mmrag.index.bm25 import BM25Params
    from mmrag.index.store import EmbeddedStore
    from mmrag.indexing.indexer import Indexer
    from tests.corpus_store import CORPUS
    from tests.fuzz.test_filters import filters

    counts = {"executions": 0, "matched": 0, "refused": 0, "failures": 0}
    failures: list[str] = []
    with EmbeddedStore(Path(tempfile.mkdtemp(prefix="fuzz-filters-")) / "store") as store:
        Indexer(store, None, progress=False).index_paths([CORPUS])

        @settings(
            max_examples=examples,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(filters)
        def fuzz(f: dict[str, Any]) -> None:
            counts["executions"] += 1
            try:
                store.filter_rows(f)
                store.search_sparse(["water"], 3, BM25Params(), f)
            except ConfigError:
                counts["refused"] += 1
            except Exception as exc:  # noqa: BLE001 - recorded
                counts["failures"] += 1
                failures.append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                counts["matched"] += 1

        fuzz()
    result = {**counts, "first_failures": sorted(set(failures))[:5]}
    print("filters", json.dumps(result), flush=True)
    return result


def run_bombs() -> dict[str, Any]:
    from tests.fuzz.bombs import BOMBS, measure

    out = {}
    with tempfile.TemporaryDirectory(prefix="fuzz-bombs-") as folder:
        for bomb in BOMBS:
            started = time.perf_counter()
            outcome = measure(bomb, Path(folder))
            outcome["seconds"] = round(time.perf_counter() - started, 1)
            out[bomb.name] = outcome
            print(bomb.name, json.dumps(outcome), flush=True)
    return out


def fuzz_server(examples: int, slow_examples: int) -> dict[str, Any]:
    from mmrag.server import ServerSettings, create_app
    from tests.corpus_store import corpus_store
    from tests.server.conftest import ANSWER_CONFIG, write_config
    from tests.server.schema_fuzz import fuzz_operations

    cache = Path(os.environ.get("MMRAG_CACHE", ROOT / ".mmrag-cache"))
    root = Path(tempfile.mkdtemp(prefix="fuzz-server-"))
    settings = ServerSettings(
        store=corpus_store(cache, root / "store"),
        config=write_config(root, ANSWER_CONFIG),
        api_key="fuzz-key",
        max_upload_bytes=1 << 20,
        timeout=90,
    )
    app = create_app(settings)
    started = time.perf_counter()
    reports = fuzz_operations(
        app, {"Authorization": "Bearer fuzz-key"}, examples, slow_examples, derandomize=False
    )
    result = {
        "operations": len(reports),
        "calls": sum(r.calls for r in reports),
        "server_errors": sum(len(r.failures) for r in reports),
        "seconds": round(time.perf_counter() - started, 1),
        "per_operation": [r.to_dict() for r in reports],
    }
    print("server", json.dumps({k: v for k, v in result.items() if k != "per_operation"}))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--audio-examples", type=int, default=150)
    parser.add_argument("--filter-examples", type=int, default=5000)
    parser.add_argument("--server-examples", type=int, default=300)
    parser.add_argument("--server-slow-examples", type=int, default=15)
    parser.add_argument("--parts", default="loaders,filters,bombs,server")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Pillow warns on every damaged TIFF tag
    parts = set(args.parts.split(","))
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results: dict[str, Any] = {
        **previous,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    command = " ".join(["nice -n 10 .venv/bin/python bench/fuzz.py", *sys.argv[1:]])
    # the command each part was last measured with (parts not run keep theirs)
    results["commands"] = {**previous.get("commands", {}), **dict.fromkeys(parts, command)}
    results.pop("command", None)
    if "loaders" in parts:
        results["loaders"] = fuzz_loaders(args.data, args.examples, args.audio_examples)
    if "filters" in parts:
        results["filters"] = fuzz_filters(args.filter_examples)
    if "bombs" in parts:
        results["bombs"] = run_bombs()
    if "server" in parts:
        results["server"] = fuzz_server(args.server_examples, args.server_slow_examples)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
