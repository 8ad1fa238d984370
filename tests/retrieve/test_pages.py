"""PDF pages as images: rendering, text layer kept, OCR for a scanned page, and a ColPali
page retriever (tiny random model built here) checked against transformers' MaxSim."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
import torch
from PIL import Image

from mmrag.errors import IngestError
from mmrag.ingest.chunking import chunk_documents
from mmrag.ingest.files import read_raw
from mmrag.ingest.pdf_pages import load_pdf_pages, make_pdf_pages_loader
from mmrag.media.pdf_render import render_page
from mmrag.types import Modality
from tests.pdfs import make_pdf

TEXT_PAGES = [
    "Solar panels convert sunlight into electricity.",
    "Wind turbines spin in the breeze.",
]


def _pdf_with_scan(receipt: Path) -> bytes:
    """Two text pages, then a page that is only a picture of a receipt (no text layer)."""
    pdf = pdfium.PdfDocument(make_pdf(TEXT_PAGES))
    scan = Image.open(receipt).convert("RGB")
    width, height = 300.0, 300.0 * scan.height / scan.width
    page = pdf.new_page(width, height)
    picture = pdfium.PdfImage.new(pdf)
    picture.set_bitmap(pdfium.PdfBitmap.from_pil(scan))
    picture.set_matrix(pdfium.PdfMatrix().scale(width, height))
    page.insert_obj(picture)
    page.gen_content()
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def scanned_pdf(tmp_path_factory, data_dir) -> Path:
    path = tmp_path_factory.mktemp("pdfs") / "mixed.pdf"
    path.write_bytes(_pdf_with_scan(data_dir / "sroie" / "images" / "000.jpg"))
    return path


def test_pages_become_page_documents_and_scans_are_ocred(scanned_pdf):
    (source,) = load_pdf_pages(read_raw(scanned_pdf)).sources
    assert [d.span.page for d in source.media] == [1, 2, 3]
    assert all(d.modality is Modality.PAGE and d.media == str(scanned_pdf) for d in source.media)
    assert source.sections[0].text.strip() == TEXT_PAGES[0]  # text layer kept
    scan = source.sections[2]
    assert scan.metadata.get("ocr") is True and "needs_ocr" not in scan.metadata
    assert "9.00" in scan.text and "TAMAN" in scan.text.upper()  # keys/000.json
    assert source.metadata["ocr_pages"] == [3] and "needs_ocr_pages" not in source.metadata
    docs = chunk_documents(source)
    assert [d.modality for d in docs][-3:] == [Modality.PAGE] * 3
    assert any(d.span.page == 3 and "9.00" in d.text for d in docs if d.modality is Modality.TEXT)


def test_without_ocr_the_scanned_page_stays_marked(scanned_pdf):
    (source,) = make_pdf_pages_loader(ocr=False)(read_raw(scanned_pdf)).sources
    assert source.metadata["needs_ocr_pages"] == [3]


def test_render_page(scanned_pdf):
    image = render_page(scanned_pdf, 1, dpi=72)
    assert image.mode == "RGB" and image.size == (612, 792)
    assert np.asarray(image).min() < 100  # the text is drawn
    with pytest.raises(IngestError, match="no page 9"):
        render_page(scanned_pdf, 9)
    with pytest.raises(IngestError, match="cannot open"):
        render_page(b"%PDF-1.4 truncated", 1)


# ---- ColPali on a tiny random model ------------------------------------------------

WORDS = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>", "Question:", "Describe", "the",
         "image.", "solar", "wind", "receipt", "total", "panels", "turbines"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_colpali(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        ColPaliConfig,
        ColPaliForRetrieval,
        ColPaliProcessor,
        PaliGemmaConfig,
        PreTrainedTokenizerFast,
        SiglipImageProcessor,
    )

    path = tmp_path_factory.mktemp("tiny-colpali")
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        extra_special_tokens={"image_token": "<image>"},
    )
    images = SiglipImageProcessor(size={"height": 32, "width": 32})
    images.image_seq_length = 16  # (32 / 8) ** 2 patches
    vlm = PaliGemmaConfig(
        text_config=dict(
            model_type="gemma", vocab_size=len(WORDS), hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        ),
        vision_config=dict(
            model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8,
            projection_dim=32,
        ),
        image_token_index=4, projection_dim=32, hidden_size=32,
    )  # fmt: skip
    torch.manual_seed(0)
    ColPaliForRetrieval(ColPaliConfig(vlm_config=vlm, embedding_dim=16)).save_pretrained(path)
    ColPaliProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(path)
    return path


def test_colpali_page_retriever_matches_transformers_maxsim(tiny_colpali, scanned_pdf, tmp_path):
    from transformers import ColPaliForRetrieval, ColPaliProcessor

    from mmrag.index.multivector import MultiVectorTable, PageFieldEmbedder, table_path
    from mmrag.index.store import EmbeddedStore
    from mmrag.indexing.indexer import Indexer
    from mmrag.models.page_encoders import load_page_encoder
    from mmrag.retrieve.pages import PageRetriever

    encoder = load_page_encoder("colpali", model=str(tiny_colpali))
    queries = ["solar panels", "wind turbines", "receipt total"]
    pages = [render_page(scanned_pdf, n) for n in (1, 2, 3)]

    model = ColPaliForRetrieval.from_pretrained(tiny_colpali).eval()
    processor = ColPaliProcessor.from_pretrained(tiny_colpali)
    with torch.no_grad():
        page_inputs = processor.process_images(images=pages, return_tensors="pt")
        page_emb = model(**{k: v for k, v in page_inputs.items() if k != "labels"}).embeddings
        query_emb = model(**processor.process_queries(text=queries, return_tensors="pt")).embeddings
    reference = processor.score_retrieval(query_emb, page_emb).numpy()

    with EmbeddedStore(tmp_path / "store") as store:
        table = MultiVectorTable(table_path(store.path), encoder.dim)
        from mmrag.ingest.files import LOADERS, ContentKind, loader_entries

        pages = loader_entries([".pdf"], make_pdf_pages_loader(ocr=False), [ContentKind.PDF])
        indexer = Indexer(
            store,
            embedders=[PageFieldEmbedder(encoder, table)],
            loaders={**LOADERS, **pages},
            progress=False,
        )
        report = indexer.index_paths([scanned_pdf])
        assert report.added == 1 and len(table) == 3
        retriever = PageRetriever(store, encoder, table)
        for qi, ranked in enumerate(retriever.retrieve_many(queries, k=3)):
            got = {h.doc.span.page: h.score for h in ranked.hits}
            expected = {page: float(reference[qi, page - 1]) for page in (1, 2, 3)}
            assert got == pytest.approx(expected, rel=2e-3, abs=2e-3)  # float16 storage
            assert [h.doc.span.page for h in ranked.hits] == sorted(
                expected, key=lambda p: -expected[p]
            )
        assert table.prune([d.id for d in store.get([f"{scanned_pdf}#page1"])]) == 2
        table.close()
