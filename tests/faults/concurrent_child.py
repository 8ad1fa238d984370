"""Child processes for the concurrency tests (run as `python concurrent_child.py ROLE ...`).

hold STORE: open the store for writing, print "ready", close when stdin gets a line.
read STORE DONE_FILE: open read-only in a loop until DONE_FILE exists, printing per open
  a JSON line of what it saw (counts, and whether every document found was whole).
join FOLDER SITE SIZE SHA256 GO_FILE: wait for GO_FILE, then ensure_file a fake split
  model (packages in SITE) into FOLDER; print the path.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def hold(store: str) -> None:
    from mmrag.index.store import EmbeddedStore

    with EmbeddedStore(store):
        print("ready", flush=True)
        sys.stdin.readline()


def read(store: str, done_file: str) -> None:
    from mmrag.index.bm25 import BM25Params
    from mmrag.index.store import EmbeddedStore

    probe = np.ones((1, 8), dtype=np.float32)
    while not Path(done_file).exists():
        with EmbeddedStore(store, read_only=True) as st:
            # What the open made of one SQLite snapshot; the searches below read SQLite
            # again as they go, so a writer's later commits can show in them.
            indexed = [len(st.sparse), len(st.dense["text"])]
            hits = st.search_sparse(["shared"], 10_000, BM25Params())[0]
            dense = st.search_dense("text", probe, 10_000)[0]
            docs = [d for d, _ in hits]
            # One statement is one snapshot: a chunk committed without its vector shows.
            (unpaired,) = st.db.execute(
                "SELECT COUNT(*) FROM chunks c LEFT JOIN vectors v"
                " ON v.field = 'text' AND v.row = c.row WHERE v.row IS NULL"
            ).fetchone()
            whole = unpaired == 0 and all(
                d.text.startswith("shared") and d.metadata.get("kind") == "batch" for d in docs
            )
            seen = {
                "indexed": indexed,
                "rows": len(st),
                "sparse": len(hits),
                "dense": len(dense),
                "sources": st.count_sources(),
                "whole": whole,
            }
        print(json.dumps(seen), flush=True)


def join(folder: str, site: str, size: str, sha256: str, go_file: str) -> None:
    sys.path.insert(0, site)
    from mmrag.models.packaged_gguf import GGUFModel, ensure_file

    parts = tuple((f"mmrag_fake_part{i}", f"data/part{i:02d}.bin") for i in range(1, 4))
    model = GGUFModel("fake", "fake.gguf", parts, size=int(size), sha256=sha256)
    while not Path(go_file).exists():
        time.sleep(0.01)
    print(ensure_file(model, Path(folder)), flush=True)


if __name__ == "__main__":
    {"hold": hold, "read": read, "join": join}[sys.argv[1]](*sys.argv[2:])
