"""Loaders per format: decoding, visible HTML text, Markdown sections, PDF pages, JSONL records.

tests/ingest/fixtures/encrypted.pdf was made once with fpdf2 (`FPDF.set_encryption(
owner_password="owner-secret", user_password="user-secret")`): pdfium cannot write
encrypted files, so it cannot be built inside a test.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from mmrag.errors import IngestError
from mmrag.ingest import chunk_documents, load, load_source

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# ---- text and encodings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b""),
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
    ],
)
def test_txt_encodings_with_marks_decode_exactly(tmp_path, encoding, bom):
    text = "Brötchen und Käse\n\n二十四节气 — naïve café"
    path = write(tmp_path / "note.txt", bom + text.encode(encoding))
    source = load_source(path)
    assert source.sections[0].text == text
    assert source.title == "Brötchen und Käse"
    assert source.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_invalid_utf8_is_refused_with_the_byte_offset(tmp_path):
    path = write(tmp_path / "latin1.txt", "Grüße aus Köln".encode("latin-1"))
    with pytest.raises(IngestError) as err:
        load_source(path)
    assert err.value.path == str(path)
    assert "not valid UTF-8 at byte 2" in err.value.reason


def test_utf16_without_bom_is_binary_not_garbage(tmp_path):
    path = write(tmp_path / "wide.txt", "plain words".encode("utf-16-le"))
    with pytest.raises(IngestError, match="NUL bytes"):
        load_source(path)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\n\t\n", "no text"),
        ("report.txt", (CORPUS / "heat-pumps.pdf").read_bytes(), "looks like a PDF but is named"),
        ("photo.md", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "looks like a PNG image"),
        ("page.html", b"PK\x03\x04" + b"\x00" * 40, "looks like a ZIP archive"),
        ("noise.txt", bytes((i * 37 + 11) % 256 for i in range(4096)), "NUL bytes"),
        ("fake.pdf", b"This is not a PDF at all.\n", "named .pdf but is not a PDF"),
        ("notes.docx", b"whatever", "unsupported file type .docx"),
        ("blob.pdf", b"\x13\x00\x37" * 50, "named .pdf but is not a PDF (it looks like unknown"),
    ],
)
def test_content_that_does_not_match_its_name_is_reported(tmp_path, name, data, reason):
    path = write(tmp_path / name, data)
    with pytest.raises(IngestError) as err:
        load(path)
    assert reason in err.value.reason
    assert str(path) in str(err.value)


def test_real_photo_named_txt_is_reported_and_lookalike_text_is_not(tmp_path, data_dir):
    photo = sorted((data_dir / "flickr8k" / "images").glob("*.jpg"))[0]
    path = write(tmp_path / "caption.txt", photo.read_bytes())
    with pytest.raises(IngestError, match="looks like a JPEG image but is named .txt"):
        load_source(path)
    # Text that merely starts with a format's letters is still text.
    for start in ("ID3 tags hold an MP3's title.", "OggS pages carry Vorbis audio.", "%PDF notes"):
        path = write(tmp_path / "note.txt", start)
        assert load_source(path).sections[0].text == start


# ---- Markdown --------------------------------------------------------------------------


def test_markdown_sections_are_slices_of_the_file(tmp_path):
    text = (
        "Intro line before any heading.\n\n"
        "# Main Title\n\nOpening paragraph.\n\n"
        "```\n# not a heading, inside code\n```\n\n"
        "## First part\n\nAlpha text.\n\n"
        "## Second part ##\n\nBeta text.\n"
    )
    source = load_source(write(tmp_path / "doc.md", text))
    assert source.title == "Main Title"
    names = [s.metadata.get("section") for s in source.sections]
    assert names == ["Main Title", "First part", "Second part"]
    for section in source.sections:
        assert text[section.offset : section.offset + len(section.text)] == section.text
    assert "".join(s.text for s in source.sections) == text
    for doc in chunk_documents(source, 256, 32):
        assert text[doc.span.start : doc.span.end] == doc.text
        assert doc.span.page is None


def test_markdown_without_headings_is_one_section_titled_by_file(tmp_path):
    source = load_source(write(tmp_path / "plain-notes.md", "Just *some* text.\n"))
    assert source.title == "plain-notes"
    assert [s.text for s in source.sections] == ["Just *some* text.\n"]


# ---- HTML ------------------------------------------------------------------------------


def test_html_keeps_visible_text_only(tmp_path):
    html = """<!doctype html><html><head><title> Tide   Notes </title>
    <style>p { color: red }</style><script>var secret = "SCRIPT_TEXT";</script></head>
    <body><h1>Heading &amp; more</h1><p>First   paragraph
    spans lines.</p><script type="module">import("x"); // SCRIPT_TEXT</script>
    <ul><li>one</li><li>two<li>three</ul><noscript>NOSCRIPT_TEXT</noscript>
    <table><tr><td>M2</td><td>12.42</td></tr><tr><td>S2</td><td>12.00</td></tr></table>
    <p>Last<br>line</p><template><p>TEMPLATE_TEXT</p></template></body></html>"""
    source = load_source(write(tmp_path / "page.html", html))
    text = source.sections[0].text
    assert source.title == "Tide Notes"
    for hidden in ("SCRIPT_TEXT", "color: red", "NOSCRIPT_TEXT", "TEMPLATE_TEXT", "Tide   Notes"):
        assert hidden not in text
    assert text == (
        "Heading & more\n\nFirst paragraph spans lines.\n\none\ntwo\nthree\n\n"
        "M2\t12.42\nS2\t12.00\n\nLast\nline"
    )


def test_html_declared_legacy_charset_is_honoured(tmp_path):
    html = (
        '<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head>'
        "<body><p>cr\xe8me br\xfbl\xe9e \x80 5</p></body></html>"
    )
    source = load_source(write(tmp_path / "legacy.htm", html.encode("latin-1")))
    assert source.title == "Café"
    assert source.sections[0].text == "crème brûlée € 5"


def test_html_with_only_script_has_no_text(tmp_path):
    path = write(tmp_path / "app.html", "<html><body><script>render()</script></body></html>")
    with pytest.raises(IngestError, match="no text"):
        load_source(path)


# ---- PDF -------------------------------------------------------------------------------


def test_pdf_pages_numbered_with_text_on_its_page():
    source = load_source(CORPUS / "honeybee-waggle-dance.pdf")
    assert source.title == "The Waggle Dance: How Honeybees Share Directions"
    assert [s.page for s in source.sections] == [1, 2, 3]
    assert source.metadata["pages"] == 3
    pages = {s.page: " ".join(s.text.split()) for s in source.sections}
    assert "Karl von Frisch" in pages[1] and "Karl von Frisch" not in pages[2]
    assert "optical odometer" in pages[2]
    assert "tremble dance" in pages[3]
    docs = chunk_documents(source, 64, 8)
    assert {d.span.page for d in docs} == {1, 2, 3}
    for doc in docs:
        page_text = source.sections[doc.span.page - 1].text
        assert page_text[doc.span.start : doc.span.end] == doc.text
        assert doc.metadata["page"] == doc.span.page


def test_truncated_pdf_is_reported(tmp_path):
    data = (CORPUS / "heat-pumps.pdf").read_bytes()
    path = write(tmp_path / "cut.pdf", data[: len(data) // 2])
    with pytest.raises(IngestError, match="damaged or truncated PDF"):
        load_source(path)


def test_encrypted_pdf_is_reported():
    with pytest.raises(IngestError, match="encrypted PDF: a password is required"):
        load_source(FIXTURES / "encrypted.pdf")


def test_page_without_text_layer_is_marked_for_ocr(tmp_path):
    # A text page from the sample corpus followed by a blank page (as a scan would be).
    pdf = pdfium.PdfDocument.new()
    pdf.import_pages(pdfium.PdfDocument(CORPUS / "heat-pumps.pdf"), [0])
    pdf.new_page(595, 842)
    path = tmp_path / "scan.pdf"
    pdf.save(path)
    pdf.close()
    source = load_source(path)
    assert [s.page for s in source.sections] == [1, 2]
    assert source.sections[1].metadata == {"needs_ocr": True}
    assert source.metadata["needs_ocr_pages"] == [2]
    docs = chunk_documents(source, 256, 32)
    assert docs and all(d.span.page == 1 for d in docs)


# ---- JSONL -----------------------------------------------------------------------------


def test_jsonl_records_with_bad_lines_reported_by_number(tmp_path):
    lines = [
        json.dumps({"id": "a1", "title": "Alpha", "text": "First record.", "lang": "en"}),
        "{not json",
        json.dumps({"_id": 7, "text": "Numeric id.", "metadata": {"year": 2020}}),
        "",
        json.dumps({"id": "a3"}),
        json.dumps(["a", "list"]),
        json.dumps({"id": "a1", "text": "Duplicate id."}),
        json.dumps({"contents": "No id here."}),
    ]
    path = write(tmp_path / "records.jsonl", "\n".join(lines) + "\n")
    loaded = load(path)
    assert [s.source_id for s in loaded.sources] == ["a1", "7"]
    first, second = loaded.sources
    assert first.title == "Alpha" and first.sections[0].text == "Alpha\n\nFirst record."
    assert first.metadata == {"lang": "en", "suffix": ".jsonl", "line": 1}
    assert first.content_hash == hashlib.sha256(lines[0].encode()).hexdigest()
    assert second.metadata["year"] == 2020 and second.title == "7"
    reasons = [e.reason for e in loaded.skipped]
    assert reasons[0].startswith("line 2: not valid JSON")
    assert reasons[1] == "line 5: no 'text' string"
    assert reasons[2] == "line 6: expected a JSON object, got list"
    assert reasons[3] == "line 7: duplicate id 'a1' (first on line 1)"
    assert reasons[4].startswith("line 8: no 'id' or '_id'")
    assert all(e.path == str(path) for e in loaded.skipped)
    with pytest.raises(IngestError, match="holds 2 records"):
        load_source(path)
    docs = chunk_documents(first, 256, 32)
    assert [d.id for d in docs] == ["a1#0"] and docs[0].source_id == "a1"
    assert docs[0].metadata["lang"] == "en" and docs[0].source == str(path)


def test_jsonl_with_no_good_line_is_an_error(tmp_path):
    path = write(tmp_path / "broken.jsonl", "{oops\n[1, 2]\n")
    with pytest.raises(IngestError, match=r"no valid records \(2 bad lines; first: line 1"):
        load(path)


def test_beir_corpus_folder_matches_its_jsonl(tmp_path, data_dir):
    with open(data_dir / "scifact" / "corpus.jsonl", "rb") as f:
        raw_lines = [next(f) for _ in range(30)]
    beir = tmp_path / "scifact-small"
    beir.mkdir()
    write(beir / "corpus.jsonl", b"".join(raw_lines))
    write(beir / "queries.jsonl", '{"_id": "q1", "text": "a question"}\n')
    loaded = load(beir)
    assert not loaded.skipped
    assert len(loaded.sources) == 30
    for source, line in zip(loaded.sources, raw_lines, strict=True):
        record = json.loads(line)
        assert source.source_id == record["_id"]
        assert source.title == record["title"]
        assert source.sections[0].text == f"{record['title']}\n\n{record['text']}"
        assert source.content_hash == hashlib.sha256(line.rstrip(b"\r\n")).hexdigest()
        for doc in chunk_documents(source, 128, 16):
            assert source.sections[0].text[doc.span.start : doc.span.end] == doc.text
            assert doc.id.startswith(record["_id"] + "#")
