"""Fixtures for audio and video tests (a plugin of tests/conftest.py): Whisper tiny.en
(packaged) and constructed clips.

The clips are built here from three held-out ("test" split) Flickr8k photos, each
narrated by espeak-ng reading its first caption: no real video data set exists here.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from mmrag.eval.constructed_video import ConstructedClip, build_clip
from mmrag.eval.image_text import flickr8k_split
from mmrag.models.whisper import WhisperTranscriber

# Three held-out photos with distinct colours and subjects; narrations are their first
# English captions.
CLIP_IMAGES = ("1001773457_577c3a7d70.jpg", "1007129816_e794419615.jpg", "102455176_5f8ead62d5.jpg")


@pytest.fixture(scope="session")
def whisper() -> WhisperTranscriber:
    return WhisperTranscriber("tiny.en")


def first_captions(flickr: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with (flickr / "captions_en.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["image"], row["caption"].strip().rstrip(" ."))
    return out


@pytest.fixture(scope="session")
def clip_images(data_dir: Path) -> list[Path]:
    assert all(flickr8k_split(name) == "test" for name in CLIP_IMAGES)
    return [data_dir / "flickr8k" / "images" / name for name in CLIP_IMAGES]


@pytest.fixture(scope="session")
def narrations(data_dir: Path) -> list[str]:
    captions = first_captions(data_dir / "flickr8k")
    return [captions[name] for name in CLIP_IMAGES]


@pytest.fixture(scope="session")
def narrated_clip(tmp_path_factory, clip_images, narrations) -> ConstructedClip:
    return build_clip(clip_images, narrations, tmp_path_factory.mktemp("clips") / "narrated.mp4")


@pytest.fixture(scope="session")
def silent_clip(tmp_path_factory, clip_images) -> ConstructedClip:
    return build_clip(clip_images, None, tmp_path_factory.mktemp("clips") / "silent.mp4")


def encode_audio(samples: np.ndarray, rate: int, codec: str, container: str) -> bytes:
    """Mono float samples encoded by PyAV into an in-memory file."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name, layout="mono", rate=rate
        )
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for start in range(0, len(pcm), 4096):
            frame = av.AudioFrame.from_ndarray(
                pcm[None, start : start + 4096], format="s16", layout="mono"
            )
            frame.sample_rate = rate
            for piece in resampler.resample(frame):
                out.mux(stream.encode(piece))
        for piece in resampler.resample(None):
            out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    return buf.getvalue()


def write_audio(path: Path, samples: np.ndarray, rate: int, codec: str, container: str) -> Path:
    """Encode mono float samples with PyAV (used to make .mp3/.ogg/.m4a test files)."""
    path.write_bytes(encode_audio(samples, rate, codec, container))
    return path
