"""The image-space field, extended to video shots: a shot's vector is the mean of its
keyframes' vectors, renormalised (CLIP4Clip's meanP, without training).

Keyframes are read from the shot's stored thumbnails when the loader wrote them, else
decoded again from the video at their times (one pass per video for all its shots).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmrag.errors import IngestError
from mmrag.index.image_embedder import ImageFieldEmbedder
from mmrag.media.decode import iter_frames
from mmrag.models.image import ImageTextEncoder, pil_image
from mmrag.models.text import normalise
from mmrag.types import Document, Modality

if TYPE_CHECKING:
    from PIL import Image

VISUAL_AND_VIDEO = (Modality.IMAGE, Modality.PAGE, Modality.VIDEO)


def _keyframes(doc: Document) -> list[dict]:
    frames = doc.metadata.get("keyframes") or []
    if not frames:
        raise IngestError(doc.id, "a video shot without keyframes")
    return frames


def keyframe_images(docs: Sequence[Document]) -> list[list[Image.Image]]:
    """Each shot's keyframes as images, in the order of `docs`."""
    out: list[list[Image.Image] | None] = [None] * len(docs)
    undecoded: dict[str, list[int]] = {}  # video path -> shots needing decoding
    for i, doc in enumerate(docs):
        frames = _keyframes(doc)
        if all("thumbnail" in f and Path(f["thumbnail"]).is_file() for f in frames):
            out[i] = [pil_image().open(f["thumbnail"]).convert("RGB") for f in frames]
        elif doc.media:
            undecoded.setdefault(doc.media, []).append(i)
        else:
            raise IngestError(doc.id, "a video shot with neither thumbnails nor its video")
    for video, shots in undecoded.items():
        wanted = sorted({round(float(f["t"]), 3) for i in shots for f in _keyframes(docs[i])})
        nearest = _nearest_frames(video, wanted)
        for i in shots:
            out[i] = [nearest[round(float(f["t"]), 3)] for f in _keyframes(docs[i])]
    return [images or [] for images in out]


def _nearest_frames(video: str, times: list[float]) -> dict[float, Image.Image]:
    """For each time, the decoded frame nearest to it (a re-encode may shift timestamps
    by a frame); only those frames are kept in memory."""
    best: dict[float, tuple[float, Image.Image]] = {}
    for frame in iter_frames(video, every=0.0):
        for t in times:
            gap = abs(frame.time - t)
            if t not in best or gap < best[t][0]:
                best[t] = (gap, frame.image)
        if frame.time > times[-1] + 1.0:
            break
    missing = [t for t in times if t not in best]
    if missing:
        raise IngestError(
            video, f"no decodable frame near {missing[0]:.2f} s for a shot's keyframe"
        )
    return {t: image for t, (_, image) in best.items()}


class ShotFieldEmbedder(ImageFieldEmbedder):
    """Embeds images and pages (as ImageFieldEmbedder does) and video shots (meanP)."""

    def __init__(
        self,
        encoder: ImageTextEncoder,
        field: str = "image",
        modalities: Sequence[Modality] = VISUAL_AND_VIDEO,
        texts: bool = False,
        batch_size: int = 16,
    ) -> None:
        super().__init__(encoder, field, modalities, texts, batch_size)

    def accepts(self, doc: Document) -> bool:
        if doc.modality is Modality.VIDEO:
            return Modality.VIDEO in self.modalities and bool(doc.metadata.get("keyframes"))
        return super().accepts(doc)

    def embed(self, docs: Sequence[Document]) -> np.ndarray:
        out = np.zeros((len(docs), self.dim), dtype=np.float32)
        shots = [i for i, d in enumerate(docs) if d.modality is Modality.VIDEO]
        others = [i for i, d in enumerate(docs) if d.modality is not Modality.VIDEO]
        if others:
            out[others] = super().embed([docs[i] for i in others])
        for start in range(0, len(shots), self.batch_size):
            part = shots[start : start + self.batch_size]
            per_shot = keyframe_images([docs[i] for i in part])
            flat = [image for images in per_shot for image in images]
            vectors = self.encoder.encode_images(flat, batch_size=self.batch_size)
            at = 0
            for i, images in zip(part, per_shot, strict=True):
                out[i] = vectors[at : at + len(images)].mean(axis=0)
                at += len(images)
        if shots:
            out[shots] = normalise(out[shots])
        return out
