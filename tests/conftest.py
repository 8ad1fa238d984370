"""Shared fixtures: real datasets from ../shared/data and a cache for expensive artefacts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# audio and video fixtures (Whisper, narrated clips), shared by ingest, models and cli tests
pytest_plugins = ["tests.av_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMRAG_DATA", ROOT.parent / "shared" / "data")).resolve()
CACHE = Path(os.environ.get("MMRAG_CACHE", ROOT / ".mmrag-cache"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"evaluation data not found at {DATA}; set MMRAG_DATA")
    return DATA


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE
