"""The multimodal reranking hook on real Flickr8k photos: an image–text encoder rescores
image candidates; a missing image is left unscored and reported, never dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrag.models.image import load_image_encoder, query_vectors
from mmrag.rerank import RERANKERS
from mmrag.types import Document, Hit, Modality, Query, Ranked

IMAGES = ["1003163366_44323f5815.jpg", "1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg"]


@pytest.fixture(scope="module")
def lit():
    return load_image_encoder("lit")


def _image_hits(data_dir: Path) -> list[Hit]:
    folder = data_dir / "flickr8k" / "images"
    hits = [
        Hit(Document(id=n, modality=Modality.IMAGE, media=str(folder / n)), score=3.0 - i)
        for i, n in enumerate(IMAGES)
    ]
    gone = Document(id="gone.jpg", modality=Modality.IMAGE, media=str(folder / "gone.jpg"))
    return [Hit(gone, score=5.0), *hits]


def test_image_reranker_scores_by_the_encoders_cosine(lit, data_dir: Path) -> None:
    ranked = Ranked(Query(text="two dogs fighting"), _image_hits(data_dir))
    out = RERANKERS.create("image", image_encoder=lit).rerank(ranked)
    # the photo of two dogs comes first; the missing file follows the scored ones
    assert out.ids()[0] == "1001773457_577c3a7d70.jpg"
    assert out.ids()[-1] == "gone.jpg" and sorted(out.ids()) == sorted(ranked.ids())
    report = out.reports[-1]
    assert report.errors == ["gone.jpg: image not found"] and report.extra["unscored"] == 1
    q = query_vectors(lit, [ranked.query])[0]
    paths = [h.doc.media for h in ranked.hits[1:]]
    expected = dict(zip(IMAGES, lit.encode_images(paths) @ q, strict=True))
    for hit in out.hits[:3]:
        assert hit.score == pytest.approx(float(expected[hit.doc.id]), abs=1e-5)


def test_image_reranker_scores_text_candidates_in_the_same_space(lit) -> None:
    query = Query(text="a dog runs on the beach")
    texts = ["a plate of pasta with tomato sauce", "a brown dog running along the sand by the sea"]
    ranked = Ranked(query, [Hit(Document(id=str(i), text=t), 1.0) for i, t in enumerate(texts)])
    out = RERANKERS.create("image", image_encoder=lit).rerank(ranked)
    assert out.ids() == ["1", "0"]
    q = query_vectors(lit, [query])[0]
    np.testing.assert_allclose(
        [h.score for h in out.hits], lit.encode_texts(texts[::-1]) @ q, atol=1e-5
    )
