"""A server killed mid-upload or mid-deletion leaves files no stored source names; the
next server over the store removes them, and keeps every file a source still uses."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from mmrag.index import faults
from mmrag.index.store import EmbeddedStore
from mmrag.server import ServerSettings
from mmrag.server.state import UPLOADS, ServerState
from tests.faults.harness import ROOT


def _server(store: Path, *args: str, crash_at: str | None = None) -> int:
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin"}
    if crash_at:
        env[faults.CRASH_ENV] = crash_at
    done = subprocess.run(
        [sys.executable, "-m", "tests.faults.server_child", str(store), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode in (0, -signal.SIGKILL), done.stderr[-2000:]
    return done.returncode


def test_files_left_by_killed_uploads_and_deletions_are_collected(tmp_path: Path) -> None:
    store = tmp_path / "s"
    assert _server(store, "upload", "kept.txt", "zqk0001 stays searchable") == 0
    assert _server(store, "upload", "gone.txt", "zqg0001 deleted by its user") == 0
    with EmbeddedStore(store, read_only=True) as st:
        gone = next(s["source_id"] for s in st.sources() if s["source_id"].endswith("gone.txt"))
    uploads = store / UPLOADS

    def files() -> set[str]:
        return {p.name for p in uploads.rglob("*") if p.is_file()}

    def staging() -> bool:
        return any(p.name.startswith(".staging-") for p in uploads.iterdir())

    dead = -signal.SIGKILL
    # Each kill leaves something behind; the next server to open the store removes it.
    assert (
        _server(store, "upload", "moved.txt", "zqm0001 unindexed", crash_at="upload.moved") == dead
    )
    assert files() == {"kept.txt", "gone.txt", "moved.txt"}
    assert _server(store, "upload", "staged.txt", "zqs0001 half", crash_at="upload.staged") == dead
    assert files() == {"kept.txt", "gone.txt", "staged.txt"} and staging()
    assert _server(store, "delete", gone, crash_at="upload.removed_rows") == dead
    assert files() == {"kept.txt", "gone.txt"} and not staging()

    state = ServerState(ServerSettings(store=store, dense=False))
    try:
        assert [p.name for p in state.orphans] == ["gone.txt"]
        assert files() == {"kept.txt"}
        assert len(list(uploads.iterdir())) == 1  # emptied folders went too
        sources = [s["source_id"] for s in state.store.sources()]
        assert len(sources) == 1 and Path(sources[0]).is_file()
    finally:
        state.close()
