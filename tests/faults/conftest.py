"""One crash workspace per test module: trials reuse its corpus and clean reference runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.harness import Workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Workspace:
    # 12 short SciFact abstracts: 3 commits of the indexer, seconds per trial
    return Workspace(tmp_path_factory.mktemp("crash"), data_dir, files=12, max_chars=300)
