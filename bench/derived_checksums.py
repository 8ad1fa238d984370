"""What checking the derived index files' checksums adds to opening a 100k-row store.

Run: nice -n 10 .venv/bin/python bench/derived_checksums.py [--rows 100000] [--dim 384]
Builds (once, into $MMRAG_CACHE/bench-stores) a store of SciFact texts repeated to
`--rows` chunks, each with a random unit vector (past 20k rows the dense field is an
HNSW graph, as a real store of that size is), then opens it read-only `--repeat` times
with the files in the page cache and reports the best open time, the part of it spent
computing checksums (timed alone over the same bytes), and the files' sizes. Writes
bench/results/derived_checksums.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mmrag.index import checksum
from mmrag.index.arrayfile import read_arrays
from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.index.store import DENSE_PREFIX, SPARSE_FILE, EmbeddedStore
from mmrag.types import Document

ROOT = Path(__file__).resolve().parents[1]
BATCH = 5000


def texts(data: Path) -> list[str]:
    with open(data / "corpus.jsonl", encoding="utf-8") as f:
        return [f"{r['title']} {r['text']}" for r in map(json.loads, f)]


def build(path: Path, rows: int, dim: int, data: Path) -> None:
    corpus = texts(data)
    rng = np.random.default_rng(0)
    with EmbeddedStore(path) as store:
        store.ensure_field("text", dim, {"kind": "random", "model": "bench", "dim": dim})
        for start in range(len(store), rows, BATCH):
            ids = range(start, min(rows, start + BATCH))
            # A copy number as its own word keeps repeated texts distinct documents.
            docs = [
                Document(
                    id=f"d{i}",
                    text=f"copy{i // len(corpus)} {corpus[i % len(corpus)]}",
                    source_id=f"d{i}",
                )
                for i in ids
            ]
            vecs = rng.standard_normal((len(docs), dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            store.write(
                Batch(
                    sources=[SourceInfo(d.id, d.id) for d in docs],
                    docs=docs,
                    vectors={"text": FieldVectors.full(vecs)},
                )
            )
            store.checkpoint()


def checksum_seconds(path: Path) -> float:
    """The checksum work an open does, alone: every sparse array and every dense file."""
    header, arrays = read_arrays(path / SPARSE_FILE)
    t = time.perf_counter()
    for a in arrays.values():
        checksum.digest(memoryview(np.ascontiguousarray(a)).cast("B") if a.nbytes else b"")
    for folder in path.glob(f"{DENSE_PREFIX}*"):
        manifest = json.loads((folder / "manifest.json").read_text())
        for name in manifest["files"].values():
            checksum.file_digest(folder / name)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cache = Path(os.environ.get("MMRAG_CACHE", ROOT / ".mmrag-cache"))
    path = cache / "bench-stores" / f"checksums-{args.rows}-{args.dim}"
    t = time.perf_counter()
    build(path, args.rows, args.dim, args.data)
    built = time.perf_counter() - t
    opens, crcs = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        with EmbeddedStore(path, read_only=True) as store:
            assert len(store.sparse) == args.rows and not store.rebuilt
        opens.append(time.perf_counter() - t)
        crcs.append(checksum_seconds(path))
    sizes = {
        str(f.relative_to(path)): f.stat().st_size
        for f in sorted(path.rglob("*"))
        if f.is_file() and (f.name == SPARSE_FILE or f.parent.name.startswith(DENSE_PREFIX))
    }
    derived = sum(sizes.values())
    result = {
        "rows": args.rows,
        "dim": args.dim,
        "build_or_refresh_s": round(built, 2),
        "open_s_best": round(min(opens), 4),
        "checksum_s_best": round(min(crcs), 4),
        "checksum_share_of_open": round(min(crcs) / min(opens), 3),
        "derived_bytes": derived,
        "checksum_mb_per_s": round(derived / 1e6 / min(crcs)),
        "files": sizes,
        "note": "warm page cache; best of --repeat; checksum time measured alone over the "
        "same arrays and files an open checks",
    }
    print(json.dumps(result, indent=1))
    out = ROOT / "bench" / "results" / "derived_checksums.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
