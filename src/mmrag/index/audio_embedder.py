"""The audio-space field: sound vectors (CLAP) for audio documents, at index time.

Each audio document names its file (`media`) and its time span; the file is decoded
once per batch at the encoder's sampling rate and each document's span is embedded
(a whole-clip "sound" document: the whole clip). Transcript segments of a video carry
the video as `media`, so their audio is embedded the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from mmrag.errors import IngestError
from mmrag.index.embedders import FieldEmbedder
from mmrag.index.fields import AUDIO_TEXT
from mmrag.media.decode import decode_audio
from mmrag.models.clap import ClapEncoder
from mmrag.types import Document, Modality

MIN_SECONDS = 0.1  # a span shorter than this is widened: an encoder needs some samples


def span_samples(doc: Document, samples: np.ndarray, rate: int) -> np.ndarray:
    """The part of a file's samples that a document covers (all of it without a span)."""
    span = doc.span
    if span is None or span.t_start is None:
        return samples
    start = max(0, int(span.t_start * rate))
    end = int((span.t_end if span.t_end is not None else len(samples) / rate) * rate)
    end = max(end, start + int(MIN_SECONDS * rate))
    part = samples[start:end]
    return part if len(part) else samples[-int(MIN_SECONDS * rate) :]


class AudioFieldEmbedder(FieldEmbedder):
    """Embeds AUDIO documents (speech segments and whole-clip sounds) with an audio encoder."""

    space: ClassVar[str] = AUDIO_TEXT

    def __init__(self, encoder: ClapEncoder, field: str = "audio", batch_size: int = 8) -> None:
        self.encoder = encoder
        self.field = field
        self.dim = encoder.dim
        self.batch_size = batch_size

    def info(self) -> dict[str, Any]:
        return self.encoder.info()

    def accepts(self, doc: Document) -> bool:
        return doc.modality is Modality.AUDIO and bool(doc.media)

    def embed(self, docs: Sequence[Document]) -> np.ndarray:
        rate = self.encoder.sampling_rate
        decoded: dict[str, np.ndarray] = {}
        waveforms = []
        for doc in docs:
            if not doc.media:
                raise IngestError(doc.id, "an audio document without its file (media)")
            if doc.media not in decoded:
                decoded[doc.media] = decode_audio(doc.media, rate).samples
            waveforms.append(span_samples(doc, decoded[doc.media], rate))
        return self.encoder.encode_audio(waveforms, rate, batch_size=self.batch_size)
