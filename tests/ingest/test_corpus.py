"""The sample corpus and real data, end to end: load, chunk, and check every span."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from mmrag.ingest import chunk_documents, scan
from mmrag.ingest.chunking import default_counter
from mmrag.types import Modality

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "corpus"


def _generator():
    """examples/make_sample_pdfs.py, whose article text is the reference for the PDFs."""
    script = ROOT / "examples" / "make_sample_pdfs.py"
    spec = importlib.util.spec_from_file_location("make_sample_pdfs", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def corpus():
    sources, errors = scan([CORPUS])
    assert errors == []
    return sources


def test_sample_corpus_is_complete(corpus):
    by_suffix: dict[str, int] = {}
    for source in corpus:
        by_suffix[source.path.suffix] = by_suffix.get(source.path.suffix, 0) + 1
        text = source.text
        size = len(re.findall(r"[\u4e00-\u9fff]", text)) or len(text.split())
        assert 300 <= size <= 1500, source.path.name
        assert source.title and source.title != source.path.stem
    assert by_suffix == {".md": 6, ".txt": 3, ".html": 1, ".pdf": 2}
    assert "README.md" not in {s.path.name for s in corpus}  # listed in .mmragignore
    assert (CORPUS / "LICENSE").read_text().count("CC BY 4.0") >= 1


@pytest.mark.parametrize(("max_tokens", "overlap"), [(256, 32), (64, 16)])
def test_every_chunk_is_the_exact_slice_its_span_names(corpus, max_tokens, overlap):
    counter = default_counter()
    for source in corpus:
        docs = chunk_documents(source, max_tokens, overlap)
        assert docs, source.path.name
        assert [d.id for d in docs] == [f"{source.source_id}#{n}" for n in range(len(docs))]
        whole = None
        if source.path.suffix in {".md", ".txt"}:
            whole = source.path.read_text(encoding="utf-8")
        for doc in docs:
            assert doc.modality is Modality.TEXT
            assert doc.source_id == source.source_id and doc.source == str(source.path)
            assert doc.metadata["title"] == source.title
            assert doc.metadata["suffix"] == source.path.suffix
            if doc.span.page is None:
                section = next(
                    s
                    for s in source.sections
                    if s.offset <= doc.span.start and doc.span.end <= s.offset + len(s.text)
                )
            else:
                section = source.sections[doc.span.page - 1]
                assert section.page == doc.span.page == doc.metadata["page"]
            start, end = doc.span.start - section.offset, doc.span.end - section.offset
            assert section.text[start:end] == doc.text
            if whole is not None:  # spans point into the file as written
                assert whole[doc.span.start : doc.span.end] == doc.text
            assert counter.count(doc.text) <= max_tokens


def test_pdf_paragraphs_are_on_the_pages_they_were_written_to(corpus):
    generator = _generator()
    for name, (title, sections) in {
        "honeybee-waggle-dance.pdf": generator.HONEYBEES,
        "heat-pumps.pdf": generator.HEAT_PUMPS,
    }.items():
        source = next(s for s in corpus if s.path.name == name)
        assert source.title == title
        pages = [squash(s.text) for s in source.sections]
        assert len(pages) == len(sections)
        for page_number, (heading, paragraphs) in enumerate(sections, start=1):
            page = pages[page_number - 1]
            assert page.startswith(squash(title + " " + heading) if page_number == 1 else heading)
            for paragraph in paragraphs:
                assert squash(paragraph) in page
                others = [p for n, p in enumerate(pages, start=1) if n != page_number]
                assert not any(squash(paragraph)[:80] in p for p in others)


def test_html_sample_drops_script_and_style(corpus):
    source = next(s for s in corpus if s.path.suffix == ".html")
    assert "pageViews" not in source.text and "font-family" not in source.text
    assert "Enable JavaScript" not in source.text  # <noscript>
    assert "up to about 16 metres" in source.text
    assert "M2\tPrincipal lunar semidiurnal\t12.42" in source.text


def test_chinese_sample_chunks_keep_whole_characters(corpus):
    source = next(s for s in corpus if s.path.name == "solar-terms.zh.md")
    assert source.title == "二十四节气"
    docs = chunk_documents(source, 48, 8)
    assert len(docs) > 10
    whole = source.path.read_text(encoding="utf-8")
    for doc in docs:
        assert whole[doc.span.start : doc.span.end] == doc.text
    assert any("2016年11月30日" in d.text for d in docs)


def test_squad_answers_survive_chunking(tmp_path, data_dir):
    """Real paragraphs as files: every short answer lies whole inside at least one chunk."""
    data = json.loads((data_dir / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    paragraphs = [p for a in data["data"][:4] for p in a["paragraphs"]][:40]
    for n, paragraph in enumerate(paragraphs):
        (tmp_path / f"p{n:03d}.txt").write_text(paragraph["context"], encoding="utf-8")
    sources, errors = scan([tmp_path])
    assert errors == [] and len(sources) == len(paragraphs)
    counter = default_counter()
    checked = 0
    for source, paragraph in zip(sources, paragraphs, strict=True):
        assert source.sections[0].text == paragraph["context"]
        docs = chunk_documents(source, 64, 24)
        for doc in docs:
            assert paragraph["context"][doc.span.start : doc.span.end] == doc.text
        for qa in paragraph["qas"]:
            for answer in qa["answers"]:
                start = answer["answer_start"]
                end = start + len(answer["text"])
                assert paragraph["context"][start:end] == answer["text"]
                if counter.count(answer["text"]) > 16:
                    continue  # longer than the overlap can guarantee
                checked += 1
                assert any(d.span.start <= start and end <= d.span.end for d in docs), answer
    assert checked > 300
