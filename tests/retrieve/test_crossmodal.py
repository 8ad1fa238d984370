"""Cross-modal retrieval over one store: image → text, OCR text → image, and the fused
multimodal list (RRF and calibrated), on real Flickr8k images and captions."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from mmrag.errors import ConfigError
from mmrag.index.batch import SourceInfo
from mmrag.index.image_embedder import ImageFieldEmbedder
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.models.image import load_image_encoder
from mmrag.models.text import load_text_encoder
from mmrag.retrieve.calibration import Platt, fit_platt
from mmrag.retrieve.crossmodal import CrossModalRetriever, ImageToTextRetriever
from mmrag.retrieve.multimodal import MultimodalRetriever
from mmrag.retrieve.ocr_text import OCRTextRetriever, ocr_terms
from mmrag.retrieve.sparse import BM25Retriever
from mmrag.types import Document, Modality, Query

IMAGES = ["1001773457_577c3a7d70.jpg", "1000268201_693b08cb0e.jpg", "1003163366_44323f5815.jpg"]


def _first_captions(data_dir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(data_dir / "flickr8k" / "captions_en.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["image"], row["caption"])
    return out


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory, data_dir):
    """Three photos, their captions as text documents, and two OCR'd 'receipts'."""
    captions = _first_captions(data_dir)
    records = []
    for name in IMAGES:
        path = str(data_dir / "flickr8k" / "images" / name)
        image = Document(id=f"img:{name}", modality=Modality.IMAGE, media=path, source_id=name)
        caption = Document(id=f"cap:{name}", text=captions[name], source_id=f"cap:{name}")
        records.append((SourceInfo(name, name), [image]))
        records.append((SourceInfo(f"cap:{name}", name), [caption]))
    receipts = {
        "r1": "BOOKTA_K(TAMANDAYA)SDNBHD\nNO.53,JALANSAGU18\nTOTAL 9.00",
        "r2": "INDAH GIFT & HOME DECO\n27,JALAN DEDAP 13\nTOTAL 60.30",
    }
    for rid, text in receipts.items():
        doc = Document(id=rid, text=text, modality=Modality.IMAGE, source_id=rid)
        records.append((SourceInfo(rid, rid), [doc]))
    store = EmbeddedStore(tmp_path_factory.mktemp("mixed"))
    image_encoder = load_image_encoder("lit")
    text_encoder = load_text_encoder("use-multilingual")
    # receipts have no media here: only real images get image vectors
    embedder = ImageFieldEmbedder(image_encoder)
    embedder.accepts = lambda d: d.modality is Modality.IMAGE and bool(d.media)  # type: ignore[method-assign]
    Indexer(store, text_encoder, embedders=[embedder], progress=False).index_records(records)
    yield store
    store.close()


def test_ocr_terms_ignore_spacing_and_keep_amounts():
    assert set(ocr_terms("SDN BHD")) == set(ocr_terms("SDNBHD"))
    assert "#9.00" in ocr_terms("TOTAL: 9.00")


def test_ocr_text_finds_receipts_despite_missing_spaces(mixed_store):
    r = OCRTextRetriever(mixed_store)
    assert r.retrieve("BOOK TA .K (TAMAN DAYA) SDN BHD", 5).ids()[0] == "r1"
    assert r.retrieve("9.00", 5).ids() == ["r1"]
    assert r.retrieve("60.30", 5).ids() == ["r2"]
    # word-level BM25 cannot: OCR glued the words into "bookta_k", "tamandaya", "sdnbhd"
    bm25 = BM25Retriever(mixed_store).retrieve("BOOK TA .K (TAMAN DAYA) SDN BHD", 5)
    assert "r1" not in bm25.ids()
    assert r.retrieve("zzzz qqqq", 5).ids() == []


def test_image_to_text_uses_the_text_field_in_the_same_space(mixed_store, data_dir):
    r = ImageToTextRetriever(mixed_store)
    assert r.field == "text"  # LiT vectors live in the use-multilingual space
    for name in IMAGES[:2]:
        q = Query(image=str(data_dir / "flickr8k" / "images" / name))
        assert r.retrieve(q, 3).ids()[0] == f"cap:{name}"
    with pytest.raises(ConfigError, match="needs an image"):
        r.retrieve("a dog", 3)


def test_text_to_image_returns_only_visual_documents(mixed_store):
    hits = CrossModalRetriever(mixed_store).retrieve("two dogs fighting", 10).hits
    assert {h.doc.modality for h in hits} == {Modality.IMAGE}
    assert hits[0].doc.id == f"img:{IMAGES[0]}"


@pytest.mark.parametrize("fusion", ["rrf", "calibrated"])
def test_multimodal_list_mixes_modalities(mixed_store, data_dir, fusion):
    r = MultimodalRetriever(mixed_store, fusion=fusion)
    names = [m.name for m in r.retrievers]
    assert names == ["hybrid", "crossmodal"]
    ids = r.retrieve("a black dog and a spotted dog", 5).ids()
    # both modalities are in one list, each led by the dog's image / caption
    assert ids[0] in {f"img:{IMAGES[0]}", f"cap:{IMAGES[0]}"}, ids
    assert next(i for i in ids if i.startswith("img:")) == f"img:{IMAGES[0]}"
    assert next(i for i in ids if i.startswith("cap:")) == f"cap:{IMAGES[0]}"
    # an image-only query skips the text members and still returns a list
    image_query = Query(image=str(data_dir / "flickr8k" / "images" / IMAGES[1]))
    only_image = r.retrieve(image_query, 3)
    assert only_image.ids()[0] == f"img:{IMAGES[1]}"
    assert only_image.reports[0].extra["members"] == ["crossmodal"]


def test_calibrated_fusion_is_noisy_or_of_member_probabilities(mixed_store):
    text = BM25Retriever(mixed_store)
    ocr = OCRTextRetriever(mixed_store)
    calibrations = {"bm25": Platt(1.0, -2.0), "ocr-text": Platt(0.5, -1.0)}
    r = MultimodalRetriever(
        mixed_store, [text, ocr], fusion="calibrated", calibrations=calibrations
    )
    query = "INDAH GIFT 60.30"
    fused = {h.doc.id: h.score for h in r.retrieve(query, 10).hits}
    miss: dict[str, float] = {}
    for member, platt in ((text, calibrations["bm25"]), (ocr, calibrations["ocr-text"])):
        for h in member.retrieve(query, 50).hits:
            p = float(platt(np.array([h.score]))[0])
            miss[h.doc.id] = miss.get(h.doc.id, 1.0) * (1 - p)
    assert fused == pytest.approx({d: 1 - m for d, m in miss.items()})
    assert max(fused, key=fused.get) == "r2"


def test_fit_platt_matches_a_generic_optimiser():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(2, 1, 60), rng.normal(0, 1, 140)])
    labels = np.concatenate([np.ones(60), np.zeros(140)]).astype(int)
    fitted = fit_platt(scores, labels)
    pos, neg = 60, 140
    t = np.where(labels > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))

    def loss(ab: np.ndarray) -> float:
        z = ab[0] * scores + ab[1]
        return float(np.sum(np.logaddexp(0, z) - t * z))

    ref = minimize(loss, x0=np.zeros(2), method="BFGS").x
    assert (fitted.a, fitted.b) == pytest.approx(tuple(ref), abs=1e-3)
    with pytest.raises(ConfigError):
        fit_platt([0.1, 0.2], [1, 1])


def test_auto_fusion_is_calibrated_only_when_every_member_has_a_fitted_calibration(mixed_store):
    from mmrag.retrieve.calibration import calibration_for

    # this store's text field is use-multilingual, for which no calibration was fitted
    assert calibration_for(mixed_store.fields()["text"]) is None
    assert MultimodalRetriever(mixed_store).fusion == "rrf"
    image = calibration_for(mixed_store.fields()["image"])
    minilm = calibration_for(
        {"encoder": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}}
    )
    assert image is not None and minilm is not None
    cosines = np.array([0.1, 0.4, 0.7])
    assert np.all(np.diff(image(cosines)) > 0) and np.all(np.diff(minilm(cosines)) > 0)
    # a MiniLM cosine of 0.1 is noise; a LiT caption-photo cosine of 0.4 is a likely match
    assert minilm(np.array([0.1]))[0] < 0.01 < image(np.array([0.4]))[0]
