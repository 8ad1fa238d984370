"""`python -m mmrag.cli` lists every command, and the server never needs the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run_python(*args: str) -> subprocess.CompletedProcess[str]:
    # COLUMNS keeps rich's help table wide enough that no command name is cut
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_python_m_mmrag_cli_lists_every_top_level_command() -> None:
    result = _run_python("-m", "mmrag.cli", "--help")
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("Commands", 1)[1]
    listed = {line.strip("│ ").split(" ", 1)[0] for line in commands.splitlines()}
    assert {"index", "search", "ask", "info", "remove", "serve", "eval", "train"} <= listed


@pytest.mark.parametrize("group", ["eval", "train"])
def test_python_m_mmrag_cli_lists_the_stage_commands(group: str) -> None:
    result = _run_python("-m", "mmrag.cli", group, "--help")
    assert result.returncode == 0, result.stderr
    expected = {
        "eval": ["beir", "squad-retrieval", "image-text", "docimg", "audio", "video", "rerank"]
        + ["qa", "refine"],
        "train": ["align"],
    }[group]
    for name in expected:
        assert f" {name} " in result.stdout, (name, result.stdout)


def test_the_server_package_imports_without_the_cli() -> None:
    """Every module of mmrag.server loads with mmrag.cli never imported: no cycle back."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import mmrag.server\n"
        "for m in pkgutil.walk_packages(mmrag.server.__path__, 'mmrag.server.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n == 'mmrag.cli' or n.startswith('mmrag.cli.')))\n"
    )
    result = _run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
