"""Image–text retrieval on Flickr8k: text → image and image → text Recall@1/5/10.

The pool is the images of one split and all their captions. Anything trained on these
images (the packaged LiT head) is trained on the "train" half and must be measured on
the "test" half only; the split is a fixed rule on the file name, so it does not move
when images are added: an image is held out when the first hex digit of the SHA-1 of
its file name is 0-7 (249 of the 498 shared images).

t2i R@k: the share of captions whose image is among the k images ranked first.
i2t R@k: the share of images with at least one of their captions among the k captions
ranked first (the usual Flickr/COCO protocol).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, IngestError
from mmrag.models.image import ImageTextEncoder

SPLITS = ("test", "train", "all")
LANGS = ("en", "zh")
KS = (1, 5, 10)


def flickr8k_split(image_name: str) -> str:
    """'test' (held out from every trained head) or 'train', from the file name alone."""
    return "test" if hashlib.sha1(image_name.encode()).hexdigest()[0] in "01234567" else "train"


@dataclass(frozen=True, slots=True)
class ImageCaptions:
    """Images and their captions: `owner[i]` is the index in `images` of caption i."""

    images: list[Path]
    captions: list[str]
    owner: np.ndarray


def load_flickr8k(directory: Path, lang: str = "en", split: str = "test") -> ImageCaptions:
    """Flickr8k as shared: images/*.jpg and captions_{lang}.csv (image, caption)."""
    if lang not in LANGS:
        raise ConfigError(f"unknown caption language {lang!r}; choose one of {LANGS}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {SPLITS}")
    directory = Path(directory)
    table = directory / f"captions_{lang}.csv"
    if not table.is_file():
        raise IngestError(str(table), "no such file (expected a Flickr8k folder)")
    by_image: dict[str, list[str]] = {}
    with table.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"image", "caption"} <= set(reader.fieldnames):
            raise IngestError(str(table), "expected the columns image,caption")
        for row in reader:
            if split == "all" or flickr8k_split(row["image"]) == split:
                by_image.setdefault(row["image"], []).append(row["caption"].strip())
    images, captions, owner = [], [], []
    for i, name in enumerate(sorted(by_image)):
        path = directory / "images" / name
        if not path.is_file():
            raise IngestError(str(path), "listed in the captions but missing")
        images.append(path)
        captions.extend(by_image[name])
        owner.extend([i] * len(by_image[name]))
    return ImageCaptions(images, captions, np.asarray(owner, dtype=np.int64))


def recall_at_k(
    image_vecs: np.ndarray, text_vecs: np.ndarray, owner: np.ndarray, ks: Sequence[int] = KS
) -> dict[str, float]:
    """t2i_r@k and i2t_r@k from unit vectors by cosine similarity (ties count as misses)."""
    sims = text_vecs @ image_vecs.T  # (captions, images)
    own = sims[np.arange(len(owner)), owner]
    # rank of the caption's own image: how many images score strictly higher
    t2i_rank = (sims > own[:, None]).sum(axis=1)
    # for each image, the best rank any of its captions reaches among all captions
    by_image = sims.T  # (images, captions)
    order = np.argsort(-by_image, axis=1, kind="stable")
    first_hit = np.full(len(image_vecs), len(owner), dtype=np.int64)
    hits = owner[order] == np.arange(len(image_vecs))[:, None]
    has = hits.any(axis=1)
    first_hit[has] = hits[has].argmax(axis=1)
    out = {}
    for k in ks:
        out[f"t2i_r@{k}"] = round(float((t2i_rank < k).mean()), 4)
    for k in ks:
        out[f"i2t_r@{k}"] = round(float((first_hit < k).mean()), 4)
    return out


def _cached_image_vectors(
    encoder: ImageTextEncoder, images: list[Path], cache: Path | None
) -> tuple[np.ndarray, float | None]:
    """Image embeddings, cached on disk by encoder and image list; seconds if computed."""
    key = hashlib.sha256(
        json.dumps([encoder.info(), [str(p) for p in images]], sort_keys=True).encode()
    ).hexdigest()[:16]
    file = cache / f"image-vectors-{key}.npy" if cache else None
    if file is not None and file.is_file():
        return np.load(file), None
    start = time.perf_counter()
    vecs = encoder.encode_images(images, progress=False)
    seconds = time.perf_counter() - start
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        np.save(file, vecs)
    return vecs, seconds


def eval_image_text(
    directory: Path,
    lang: str = "en",
    encoder: ImageTextEncoder | None = None,
    split: str = "test",
    cache: Path | None = None,
) -> dict[str, Any]:
    """The body of `mmrag eval image-text DIR [--lang zh] [--split test]`: metrics as a dict."""
    if encoder is None:
        from mmrag.models.image import load_image_encoder

        encoder = load_image_encoder("lit")
    data = load_flickr8k(directory, lang, split)
    if split != "test" and getattr(encoder, "head", None) is not None:
        raise ConfigError(
            "this encoder has a trained head: measure it on the held-out split only (--split test)"
        )
    image_vecs, seconds = _cached_image_vectors(encoder, data.images, cache)
    text_vecs = encoder.encode_texts(data.captions)
    result: dict[str, Any] = recall_at_k(image_vecs, text_vecs, data.owner)
    result.update(
        {
            "lang": lang,
            "split": split,
            "images": len(data.images),
            "captions": len(data.captions),
            "encoder": encoder.info(),
        }
    )
    if seconds:
        result["images_per_s"] = round(len(data.images) / seconds, 2)
    return result
