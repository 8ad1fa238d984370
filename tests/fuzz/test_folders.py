"""A scanned folder with hostile entries: symlink loops, a loader that crashes. The
indexer reports each bad file with its reason, skips it, and indexes the others."""

from __future__ import annotations

import os
from pathlib import Path

from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.ingest.files import LOADERS, RawFile, loader_entries, scan

GOOD = "Tides rise and fall twice a day as the Moon pulls the oceans."


def _hostile_folder(root: Path) -> Path:
    folder = root / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.txt").write_text(GOOD)
    os.symlink("loop.txt", folder / "loop.txt")  # a link to itself
    os.symlink("b.md", folder / "a.md")  # two links to each other
    os.symlink("a.md", folder / "b.md")
    os.symlink("..", folder / "sub" / "up")  # a folder link back up: not followed
    (folder / "sub" / "nested.md").write_text("# Nested\n\nA nested note about tides.")
    return folder


def test_symlink_loops_are_reported_and_the_other_files_indexed(tmp_path):
    folder = _hostile_folder(tmp_path)
    with EmbeddedStore(tmp_path / "store") as store:
        report = Indexer(store, None, progress=False).index_paths([folder, folder / "loop.txt"])
        stored = sorted(Path(s["path"]).name for s in store.sources())
    assert stored == ["good.txt", "nested.md"]
    reasons = {Path(e.path).name: e.reason for e in report.errors}
    assert reasons["a.md"] == reasons["b.md"] == reasons["loop.txt"]
    assert reasons["a.md"] == "Too many levels of symbolic links"  # the system's ELOOP
    sources, errors = scan([folder])  # the library's scan: same files, its own wording
    assert sorted(s.path.name for s in sources) == ["good.txt", "nested.md"]
    assert {Path(e.path).name for e in errors} == {"a.md", "b.md", "loop.txt"}
    assert all("symlink loop" in e.reason for e in errors)


def test_a_loader_that_crashes_fails_its_file_alone(tmp_path):
    """Before: the indexer caught only IngestError and OSError, so one parser bug (here a
    RecursionError, as json raised on a deep record) ended the whole run."""

    def crashing(raw: RawFile):
        raise RecursionError("maximum recursion depth exceeded")

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text(GOOD)
    (folder / "bad.crash").write_text("anything")
    table = {**LOADERS, **loader_entries([".crash"], crashing)}
    with EmbeddedStore(tmp_path / "store") as store:
        report = Indexer(store, None, loaders=table, progress=False).index_paths([folder])
        assert [Path(s["path"]).name for s in store.sources()] == ["good.txt"]
    (error,) = report.errors
    assert Path(error.path).name == "bad.crash"
    assert error.reason == "unexpected RecursionError: maximum recursion depth exceeded"
    sources, errors = scan([folder], loaders=table)
    assert [s.path.name for s in sources] == ["good.txt"] and len(errors) == 1
