"""Finding files, scanning folders with bad files in them, content hashes, extra loaders."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from mmrag.errors import IngestError
from mmrag.ingest import (
    LOADERS,
    Loaded,
    RawFile,
    Section,
    iter_files,
    load_source,
    register_loader,
    scan,
)
from mmrag.ingest.text_loaders import decode_text

CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_scan_reports_every_bad_file_and_loads_the_good_ones(tmp_path):
    pdf = (CORPUS / "heat-pumps.pdf").read_bytes()
    good = {
        write(tmp_path / "good.txt", "A plain note about tides.\n"),
        write(tmp_path / "sub" / "good.md", "# Notes\n\nSome *Markdown*.\n"),
        write(tmp_path / "sub" / "page.html", "<title>T</title><script>x()</script><p>Shown</p>"),
        write(tmp_path / "deep" / "er" / "real.pdf", pdf),
    }
    bad = {
        write(tmp_path / "empty.txt", b""): "empty file",
        write(tmp_path / "garbage.txt", bytes(range(256)) * 4): "binary data (NUL bytes)",
        write(tmp_path / "cut.pdf", pdf[: len(pdf) // 3]): "damaged or truncated PDF",
        write(tmp_path / "sub" / "report.txt", pdf): "looks like a PDF but is named .txt",
        write(tmp_path / "latin1.txt", "café".encode("latin-1")): "not valid UTF-8 at byte 3",
    }
    records = write(
        tmp_path / "records.jsonl",
        '{"id": "r1", "text": "good"}\n{"id": "r2", "text": \n{"id": "r3", "text": "fine"}\n',
    )
    sources, errors = scan([tmp_path, tmp_path / "missing-folder"])

    by_path = {str(s.path) for s in sources if s.path != records.resolve()}
    assert by_path == {str(p.resolve()) for p in good}
    assert [s.source_id for s in sources if s.path == records.resolve()] == ["r1", "r3"]
    html = next(s for s in sources if s.path.suffix == ".html")
    assert html.sections[0].text == "Shown"

    reasons = {e.path: e.reason for e in errors}
    for path, reason in bad.items():
        assert reason in reasons.pop(str(path.resolve()))
    assert reasons.pop(str(tmp_path / "missing-folder")) == "no such file or directory"
    assert reasons.pop(str(records.resolve())).startswith("line 2: not valid JSON")
    assert reasons == {}


def test_iter_files_is_sorted_and_skips_hidden_unknown_and_ignored(tmp_path):
    for name in (
        "b.md",
        "a.txt",
        "c.PDF",
        "notes.docx",
        ".hidden.txt",
        "x/.git/config.txt",
        ".cache/a.md",
        "x/y/z.html",
        "x/README.md",
        "x/keep.md",
        "x/drafts/d.txt",
    ):
        write(tmp_path / name, "text")
    write(tmp_path / "x" / ".mmragignore", "# not articles\nREADME.md\ndrafts\n")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert found == ["a.txt", "b.md", "c.PDF", "x/keep.md", "x/y/z.html"]
    assert [p.name for p in iter_files([tmp_path], recursive=False)] == ["a.txt", "b.md", "c.PDF"]
    # A file named explicitly is kept whatever it is, so scan can say why it fails.
    explicit = [tmp_path / "notes.docx", tmp_path / "a.txt", tmp_path / "a.txt"]
    assert list(iter_files(explicit)) == explicit[:2]
    _, errors = scan([tmp_path / "notes.docx"])
    assert "unsupported file type .docx" in errors[0].reason


def test_beir_folder_yields_only_its_corpus(tmp_path):
    write(tmp_path / "beir" / "corpus.jsonl", '{"_id": "d1", "title": "T", "text": "Body."}\n')
    write(tmp_path / "beir" / "queries.jsonl", '{"_id": "q1", "text": "question"}\n')
    write(tmp_path / "beir" / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\n")
    write(tmp_path / "other.md", "# Other\n")
    assert [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])] == [
        "beir/corpus.jsonl",
        "other.md",
    ]
    sources, errors = scan([tmp_path / "beir"])
    assert not errors
    assert [(s.source_id, s.sections[0].text) for s in sources] == [("d1", "T\n\nBody.")]
    # Without queries or qrels beside it, corpus.jsonl is an ordinary JSONL file.
    write(tmp_path / "mine" / "corpus.jsonl", '{"id": "m1", "text": "Mine."}\n')
    write(tmp_path / "mine" / "notes.txt", "My notes.")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path / "mine"])]
    assert found == ["mine/corpus.jsonl", "mine/notes.txt"]


def test_content_hash_is_stable_and_follows_every_byte(tmp_path):
    path = tmp_path / "water-cycle.md"
    shutil.copy(CORPUS / "water-cycle.md", path)
    first, again = load_source(path), load_source(path)
    assert first.content_hash == again.content_hash
    assert first.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert first.source_id == str(path.resolve()) and first.path == path.resolve()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte
    path.write_bytes(bytes(data))
    changed = load_source(path)
    assert changed.content_hash != first.content_hash
    assert changed.source_id == first.source_id


def test_register_loader_adds_a_format(tmp_path, monkeypatch):
    def load_rst(raw: RawFile) -> Loaded:
        text = decode_text(raw)
        title = text.splitlines()[0]
        return Loaded([raw.source(title, [Section(text)], {"markup": "rst"})])

    monkeypatch.setattr("mmrag.ingest.files.LOADERS", dict(LOADERS))
    write(tmp_path / "guide.rst", "Guide\n=====\n\nSome text.\n")
    assert list(iter_files([tmp_path])) == []
    register_loader(["rst", ".REST"], load_rst)
    sources, errors = scan([tmp_path])
    assert not errors
    assert sources[0].title == "Guide"
    assert sources[0].metadata == {"suffix": ".rst", "markup": "rst"}
    # The content check still guards the new suffix.
    write(tmp_path / "fake.rest", (CORPUS / "heat-pumps.pdf").read_bytes())
    with pytest.raises(IngestError, match="looks like a PDF but is named .rest"):
        load_source(tmp_path / "fake.rest")
