"""Images through the API: upload real Flickr8k photos, find them by caption, fetch
thumbnails and byte ranges of the stored JPEGs."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from tests.server.conftest import Live, flickr_images


@pytest.fixture(scope="module")
def photos(multimodal_served: Live, data_dir: Path) -> list[tuple[Path, str, str]]:
    """(file, caption, document id) for three uploaded photos."""
    out = []
    for path, caption in flickr_images(data_dir, 3):
        r = multimodal_served.client.post(
            "/api/documents", files=[("files", (path.name, path.read_bytes(), "image/jpeg"))]
        )
        assert r.status_code == 201, r.text
        (doc,) = r.json()["documents"]
        assert doc["chunks"] == 1 and doc["bytes"] == path.stat().st_size
        out.append((path, caption, f"{doc['source_id']}#image"))
    return out


def test_a_caption_finds_its_photo_first(
    multimodal_served: Live, photos: list[tuple[Path, str, str]]
) -> None:
    info = multimodal_served.client.get("/api/info").json()
    assert "image" in info["store"]["fields"]
    assert info["default_retriever"] == "multimodal"
    for _, caption, doc_id in photos:
        body = multimodal_served.client.post("/api/search", json={"query": caption, "k": 5}).json()
        assert body["retriever"] == "multimodal"
        top = body["hits"][0]
        assert top["id"] == doc_id, (caption, [h["id"] for h in body["hits"]])
        assert top["modality"] == "image" and top["has_media"]


def test_photo_thumbnails_keep_the_aspect_ratio(
    multimodal_served: Live, photos: list[tuple[Path, str, str]]
) -> None:
    for path, _, doc_id in photos:
        r = multimodal_served.client.get(
            f"/api/thumbnail/{quote(doc_id, safe='')}", params={"size": 96}
        )
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        thumb = Image.open(BytesIO(r.content))
        original = Image.open(path)
        assert max(thumb.size) == 96
        assert abs(thumb.width / thumb.height - original.width / original.height) < 0.05


def test_stored_photos_are_served_by_range(
    multimodal_served: Live, photos: list[tuple[Path, str, str]]
) -> None:
    path, _, doc_id = photos[0]
    data = path.read_bytes()
    url = f"/api/media/{quote(doc_id, safe='')}"
    whole = multimodal_served.client.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "image/jpeg"
    part = multimodal_served.client.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
