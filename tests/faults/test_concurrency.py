"""Processes sharing a store or a model cache: a second writer is refused or waits, readers
never see half a batch, and two joins of one packaged model end with one verified file."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.errors import StoreError
from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.index.store import EmbeddedStore
from mmrag.models.packaged_gguf import sha256_file
from mmrag.types import Document

ROOT = Path(__file__).resolve().parents[2]
CHILD = str(Path(__file__).with_name("concurrent_child.py"))
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
runner = CliRunner()
PER_BATCH = 8  # chunks per batch, two per source
MAX_BATCHES = 2000


def _child(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, CHILD, *args], env=ENV, text=True, stdout=subprocess.PIPE, **kw
    )


@pytest.fixture()
def holder(tmp_path: Path):
    """Another process holding the store open for writing, until told to close."""
    EmbeddedStore(tmp_path / "s").close()
    child = _child("hold", str(tmp_path / "s"), stdin=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    yield child
    if child.poll() is None:
        child.communicate("close\n", timeout=30)


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path: Path, holder) -> None:
    with pytest.raises(StoreError, match=rf"another process \(pid {holder.pid}\); wait"):
        EmbeddedStore(tmp_path / "s")
    with pytest.raises(StoreError, match=r"waited 0.3 s"):
        EmbeddedStore(tmp_path / "s", lock_timeout=0.3)
    reader = EmbeddedStore(tmp_path / "s", read_only=True)  # readers take no lock
    reader.close()
    result = runner.invoke(app, ["remove", "x", "--store", str(tmp_path / "s"), "--wait", "0.2"])
    assert result.exit_code == 2 and f"pid {holder.pid}" in result.output


def test_a_writer_with_a_timeout_waits_for_the_holder(tmp_path: Path, holder) -> None:
    opened: list[EmbeddedStore] = []
    waiter = threading.Thread(
        target=lambda: opened.append(EmbeddedStore(tmp_path / "s", lock_timeout=60))
    )
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and not opened  # still waiting: the holder has the store
    holder.communicate("close\n", timeout=30)
    waiter.join(60)
    (store,) = opened
    assert (tmp_path / "s" / ".lock").read_text().strip() == str(os.getpid())
    store.close()


def _batch(i: int) -> Batch:
    docs = [
        Document(
            id=f"b{i}-{j}",
            text=f"shared word{i} filler{j}",
            source_id=f"b{i}-s{j // 2}",
            metadata={"kind": "batch", "batch": i},
        )
        for j in range(PER_BATCH)
    ]
    vectors = np.random.default_rng(i).normal(size=(PER_BATCH, 8)).astype(np.float32)
    return Batch(
        sources=[SourceInfo(s, s) for s in sorted({d.source_id for d in docs})],
        docs=docs,
        vectors={"text": FieldVectors.full(vectors)},
    )


def test_reader_processes_during_writes_see_whole_batches(tmp_path: Path) -> None:
    """Readers reopen the store in a loop (as `mmrag search` does per call) while this
    process writes, deletes and checkpoints: every open sees a whole number of batches."""
    path, done = tmp_path / "s", tmp_path / "done"
    store = EmbeddedStore(path)
    store.ensure_field("text", 8, {"kind": "random", "model": "concurrency"})
    store.write(_batch(0))
    store.checkpoint()
    readers = [_child("read", str(path), str(done)) for _ in range(2)]
    seen: list[list[dict]] = [[] for _ in readers]

    def collect(child: subprocess.Popen, into: list[dict]) -> None:
        assert child.stdout is not None
        for line in child.stdout:
            into.append(json.loads(line))

    threads = [threading.Thread(target=collect, args=rs) for rs in zip(readers, seen, strict=True)]
    for t in threads:
        t.start()
    try:
        i = 0
        # Write until each reader has opened the store 30 times meanwhile.
        while i < MAX_BATCHES and min(len(s) for s in seen) < 30:
            i += 1
            store.write(_batch(i))
            if i % 4 == 0:
                store.delete_sources([f"b{i - 1}-s{j}" for j in range(PER_BATCH // 2)])
            if i % 3 == 0:  # readers meet new derived files as well as the change log
                store.checkpoint()
    finally:
        store.close()
        done.touch()
        for reader, t in zip(readers, threads, strict=True):
            reader.wait(timeout=120)
            t.join()
    assert [r.returncode for r in readers] == [0, 0]
    observed = [o for s in seen for o in s]
    for o in observed:
        assert o["whole"], o
        # The indexes are as of the open's snapshot; later counts read SQLite as it is
        # then (an open store does not follow a writer), so each is checked on its own.
        assert o["indexed"][0] == o["indexed"][1] and o["indexed"][0] % PER_BATCH == 0, o
        assert o["sparse"] % PER_BATCH == 0 and o["dense"] % PER_BATCH == 0, o
        assert o["rows"] % PER_BATCH == 0 and o["sources"] % (PER_BATCH // 2) == 0, o
    assert len({o["rows"] for o in observed}) > 3  # the readers did overlap the writes


def test_two_processes_joining_one_model_end_with_one_verified_file(tmp_path: Path) -> None:
    site = tmp_path / "site"
    rng = np.random.default_rng(3)
    chunks = [rng.bytes(n) for n in (9 << 20, 7 << 20, 123_457)]  # several 8 MB reads each
    for i, chunk in enumerate(chunks, 1):
        (site / f"mmrag_fake_part{i}" / "data").mkdir(parents=True)
        (site / f"mmrag_fake_part{i}" / "__init__.py").write_text("")
        (site / f"mmrag_fake_part{i}" / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    whole = b"".join(chunks)
    sha = hashlib.sha256(whole).hexdigest()
    folder, go = tmp_path / "cache" / "models", tmp_path / "go"
    # a join that died earlier (kill -9 skips its cleanup) left a partial file
    folder.mkdir(parents=True)
    (folder / "fake.gguf.99999.tmp").write_bytes(whole[:1000])
    joiners = [
        _child("join", str(folder), str(site), str(len(whole)), sha, str(go)) for _ in range(2)
    ]
    go.touch()
    paths = []
    for joiner in joiners:
        out, _ = joiner.communicate(timeout=120)
        assert joiner.returncode == 0
        paths.append(out.strip())
    assert paths == [str(folder / "fake.gguf")] * 2
    assert sha256_file(folder / "fake.gguf") == sha
    marker = json.loads((folder / "fake.gguf.verified.json").read_text())
    assert marker["sha256"] == sha and marker["size"] == len(whole)
    assert sorted(p.name for p in folder.iterdir()) == [
        "fake.gguf",
        "fake.gguf.lock",
        "fake.gguf.verified.json",
    ]
