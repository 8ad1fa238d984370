"""Split GGUF models: parts joined in order, the joined file checked against its pinned sha256."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from mmrag.errors import ConfigError, MissingDependency
from mmrag.models.packaged_gguf import QWEN_05B, GGUFModel, ensure_file, gguf_file


@pytest.fixture()
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[GGUFModel, bytes]:
    """Three installed 'packages' holding one part each (as the Qwen packages do)."""
    site = tmp_path / "site"
    chunks = [b"GGUF" + bytes(range(256)) * 40, b"middle" * 1000, b"end" * 7]
    for i, chunk in enumerate(chunks, 1):
        (site / f"mmrag_test_part{i}" / "data").mkdir(parents=True)
        (site / f"mmrag_test_part{i}" / "__init__.py").write_text("")
        (site / f"mmrag_test_part{i}" / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    model = GGUFModel(
        "test-model",
        "test-model.gguf",
        tuple((f"mmrag_test_part{i}", f"data/part{i:02d}.bin") for i in range(1, 4)),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    return model, whole


def test_parts_are_joined_in_order_and_verified(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, whole = parts
    path = ensure_file(model, tmp_path / "cache")
    assert path.read_bytes() == whole
    marker = json.loads(path.with_name(path.name + ".verified.json").read_text())
    assert marker["sha256"] == model.sha256 and marker["size"] == len(whole)
    assert ensure_file(model, tmp_path / "cache") == path  # second call: no re-join


def test_a_wrong_checksum_is_an_error_naming_the_packages(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, _ = parts
    bad = GGUFModel(model.name, model.filename, model.parts, model.size, "0" * 64)
    with pytest.raises(ConfigError, match="mmrag-test-part1 mmrag-test-part2 mmrag-test-part3"):
        ensure_file(bad, tmp_path / "cache")
    # nothing half-written left behind, only the (empty) lock file joiners share
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["test-model.gguf.lock"]


def test_a_changed_file_is_hashed_again_and_replaced(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, whole = parts
    path = ensure_file(model, tmp_path / "cache")
    path.write_bytes(b"corrupted")
    assert ensure_file(model, tmp_path / "cache").read_bytes() == whole


def test_a_missing_part_names_what_to_install(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, _ = parts
    missing = GGUFModel(
        model.name, model.filename, (*model.parts, ("mmrag_absent_part4", "x.bin")), 1, "0" * 64
    )
    with pytest.raises(MissingDependency, match="mmrag-absent-part4"):
        ensure_file(missing, tmp_path / "cache")
    assert "mmrag_absent_part4" not in sys.modules


def test_the_packaged_qwen_file_is_the_pinned_one() -> None:
    path = gguf_file(QWEN_05B.name)
    assert path.stat().st_size == QWEN_05B.size
    assert path.read_bytes()[:4] == b"GGUF"


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="no packaged GGUF model"):
        gguf_file("qwen-9000")
