"""Image files into documents: formats, EXIF orientation, OCR on a real receipt, bad input,
and a folder indexed with the image field while bad files are reported."""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmrag.errors import IngestError
from mmrag.index.image_embedder import ImageFieldEmbedder
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.ingest.files import ContentKind, load, load_source, sniff
from mmrag.ingest.image_loader import make_image_loader
from mmrag.models.image import load_image_encoder, open_image
from mmrag.types import Modality, Query

DOG = "1001773457_577c3a7d70.jpg"  # "A black dog and a spotted dog are fighting"
GIRL = "1000268201_693b08cb0e.jpg"  # "A child in a pink dress is climbing up a set of stairs"


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries one row of data: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 3 * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _image_doc(path: Path):
    (source,) = load(path).sources
    (doc,) = source.media
    return source, doc


@pytest.mark.parametrize(
    "fmt,suffix",
    [
        ("PNG", ".png"),
        ("WEBP", ".webp"),
        ("GIF", ".gif"),
        ("BMP", ".bmp"),
        ("TIFF", ".tiff"),
        ("JPEG", ".jpeg"),
    ],
)
def test_every_format_becomes_one_image_document(tmp_path, fmt, suffix):
    path = tmp_path / f"picture{suffix}"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, format=fmt)
    source, doc = _image_doc(path)
    assert doc.modality is Modality.IMAGE and doc.media == str(path.resolve())
    assert doc.id == f"{path.resolve()}#image" and doc.group == source.source_id
    assert (doc.metadata["width"], doc.metadata["height"], doc.metadata["format"]) == (64, 48, fmt)
    assert doc.text == ""  # a flat colour carries no text: the cheap check skips OCR


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (80, 40), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 40, 40))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    upright = open_image(path)
    assert upright.size == (40, 80)
    top = np.asarray(upright)[5, 20]
    assert top[0] > 200 and top[2] < 60  # the red half is now on top
    assert _image_doc(path)[1].metadata["height"] == 80


def test_a_suffix_that_lies_is_read_by_content(tmp_path):
    path = tmp_path / "really_a.jpg"
    Image.new("RGB", (10, 10)).save(path, format="PNG")
    assert _image_doc(path)[1].metadata["format"] == "PNG"
    text = tmp_path / "notes.png"
    text.write_text("just some text")
    with pytest.raises(IngestError, match="not .*image"):
        load(text)
    assert sniff(b"BM" + b"\x10\x00\x00\x00" + b"\x00" * 8) is ContentKind.BMP
    assert sniff(b"BMW cars are fast") is ContentKind.TEXT


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(20000, 20000))
    with pytest.raises(IngestError, match="decompression.bomb"):
        load(path)


def test_truncated_corrupt_and_empty_images_are_clear_errors(tmp_path, data_dir):
    data = (data_dir / "flickr8k" / "images" / DOG).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match="truncated"):
        load(tmp_path / "cut.jpg")
    (tmp_path / "noise.jpg").write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 4)
    with pytest.raises(IngestError, match="noise.jpg"):
        load(tmp_path / "noise.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(IngestError, match="empty"):
        load(tmp_path / "empty.png")


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    assert open_image(buffer.getvalue()).getpixel((1, 1)) == (255, 255, 255)


def test_receipt_is_read_by_ocr_and_a_photo_is_not(data_dir, tmp_path):
    receipt = tmp_path / "receipt.jpg"
    shutil.copy(data_dir / "sroie" / "images" / "001.jpg", receipt)
    source, doc = _image_doc(receipt)
    assert doc.metadata["ocr"] is True
    text = doc.text.upper()
    assert "INDAH GIFT" in text and "60.30" in text  # company and total of keys/001.json
    assert source.sections == []  # the text is on the image document itself
    _, photo = _image_doc(data_dir / "flickr8k" / "images" / GIRL)
    assert "ocr" not in photo.metadata and photo.text == ""
    never = make_image_loader(ocr="never")
    from mmrag.ingest.files import read_raw

    (src,) = never(read_raw(receipt)).sources
    assert src.media[0].text == ""


def test_folder_is_indexed_with_image_vectors_and_bad_files_reported(data_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in (DOG, GIRL):
        shutil.copy(data_dir / "flickr8k" / "images" / name, folder / name)
    (folder / "bomb.png").write_bytes(_png_header(20000, 20000))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    encoder = load_image_encoder("lit")
    with EmbeddedStore(tmp_path / "store") as store:
        indexer = Indexer(store, embedders=[ImageFieldEmbedder(encoder)], progress=False)
        report = indexer.index_paths([folder])
        assert report.added == 2 and len(report.errors) == 2
        assert {Path(e.path).name for e in report.errors} == {"bomb.png", "broken.jpg"}
        assert store.info()["dense_rows"]["image"] == 2
        from mmrag.retrieve.crossmodal import CrossModalRetriever

        retriever = CrossModalRetriever(store)  # rebuilds the encoder from the field's info
        dogs = retriever.retrieve("two dogs playing", 2)
        assert Path(dogs.hits[0].doc.media).name == DOG
        girl = retriever.retrieve(Query(text="小女孩爬楼梯"), 2)
        assert Path(girl.hits[0].doc.media).name == GIRL
        same = retriever.retrieve(Query(image=str(folder / GIRL)), 1)
        assert Path(same.hits[0].doc.media).name == GIRL
        assert same.hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert load_source(folder / DOG).media[0].modality is Modality.IMAGE
