"""Uploads follow the config the store remembers: a photo and a recording uploaded to a
server store hold the same documents and vectors as `mmrag index` makes of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.index.store import EmbeddedStore
from mmrag.server import ServerSettings
from tests.models.tiny_clap import build_tiny_clap
from tests.server.conftest import flickr_images, live_server

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clap(tmp_path_factory.mktemp("tiny-clap"))


def _index(paths: Path, store: Path, options: list[str]) -> None:
    result = runner.invoke(app, ["index", str(paths), "--store", str(store), *options])
    assert result.exit_code == 0, result.output


def _documents(store: Path, names: list[str]) -> list[tuple]:
    """Per document of the named files: its file name, modality, text, span and vector
    in every field (zeros where it has none), in store order."""
    with EmbeddedStore(store, read_only=True) as st:
        rows, docs = [], []
        for row, doc in st.iter_documents():
            if doc.source and Path(doc.source).name in names:
                rows.append(row)
                docs.append(doc)
        vectors = {name: st.vectors(name, rows) for name in sorted(st.fields())}
    return [
        (
            Path(d.source).name,
            d.modality,
            d.text,
            d.span,
            {name: v[i] for name, v in vectors.items()},
        )
        for i, d in enumerate(docs)
    ]


def test_uploads_are_indexed_as_mmrag_index_would(
    tmp_path: Path, data_dir: Path, tiny_clap: Path
) -> None:
    photo, _ = flickr_images(data_dir, 1)[0]
    recording = data_dir / "fsdd" / "recordings" / "7_george_0.wav"
    names = [photo.name, recording.name]
    options = ["--image-encoder", "lit", "--ocr", "never"]
    options += ["--audio-encoder", "clap", "--audio-model", str(tiny_clap)]

    # what `mmrag index` makes of the two files
    files = tmp_path / "files"
    files.mkdir()
    for f in (photo, recording):
        shutil.copy(f, files / f.name)
    _index(files, tmp_path / "by-cli", options)

    # a store indexed by `mmrag index` with the same options, then served: the uploads
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "note.txt").write_text("A note, so the store exists before the uploads.")
    served = tmp_path / "served"
    _index(notes, served, options)
    with live_server(ServerSettings(store=served)) as live:
        for f in (photo, recording):
            r = live.client.post("/api/documents", files=[("files", (f.name, f.read_bytes()))])
            assert r.status_code == 201, r.text

    expected, got = _documents(tmp_path / "by-cli", names), _documents(served, names)
    assert [d[:4] for d in got] == [d[:4] for d in expected]
    modalities = {d[1].value for d in got}
    assert modalities == {"image", "audio"}
    for want, have in zip(expected, got, strict=True):
        assert want[4].keys() == have[4].keys() == {"text", "image", "audio"}
        for field in want[4]:
            np.testing.assert_allclose(have[4][field], want[4][field], atol=1e-5)
    # the recording has sound vectors (CLAP), as the stored config asks
    assert any(np.any(d[4]["audio"]) for d in got if d[1].value == "audio")
    assert any(np.any(d[4]["image"]) for d in got if d[1].value == "image")
