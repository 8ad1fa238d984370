"""Constructed video clips for tests and benchmarks (no real video dataset is available
here): Flickr8k photos shown one after another, each narrated by espeak-ng reading one
of its captions. Every clip says it is constructed (`metadata: constructed`).

A clip of n photos has n shots with known time spans, and known narration in each, so
"caption → clip and time span" can be scored exactly. Video is MPEG-4 Part 2 in .mp4
(or VP8 in .webm), audio AAC (or Opus), all encoded by the FFmpeg inside PyAV.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmrag.errors import ConfigError
from mmrag.media.decode import decode_audio
from mmrag.registry import require

if TYPE_CHECKING:
    from PIL import Image

FPS = 4  # still photos: a few frames a second keeps the files tiny
SIZE = (320, 240)
RATE = 16_000
GAP = 0.4  # seconds of silence after each narration


@dataclass(frozen=True, slots=True)
class ClipPart:
    image: str  # the photo's file name
    narration: str  # the caption spoken over it
    t_start: float
    t_end: float


@dataclass(frozen=True, slots=True)
class ConstructedClip:
    path: Path
    parts: list[ClipPart]


def espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise ConfigError(
            "espeak-ng is needed to narrate constructed clips: apt-get install espeak-ng"
        )
    return found


def speak(text: str, voice: str = "en-us", words_per_minute: int = 165) -> np.ndarray:
    """espeak-ng's reading of `text` as 16 kHz mono float32."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            [espeak(), "-v", voice, "-s", str(words_per_minute), "-w", str(wav), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return decode_audio(wav, RATE).samples


def _letterbox(path: Path) -> Image.Image:
    Image = require("PIL.Image", "images")
    image = Image.open(path).convert("RGB")
    image.thumbnail(SIZE)
    canvas = Image.new("RGB", SIZE)
    canvas.paste(image, ((SIZE[0] - image.width) // 2, (SIZE[1] - image.height) // 2))
    return canvas


def build_clip(
    images: list[Path],
    narrations: list[str] | None,
    out: Path,
    min_seconds: float = 2.0,
) -> ConstructedClip:
    """Write a clip of `images` (one shot each) narrated by `narrations` (None: silent,
    no audio track). The container follows the suffix: .mp4/.mov or .webm/.mkv."""
    av = require("av", "audio")
    if narrations is not None and len(narrations) != len(images):
        raise ConfigError("one narration per image")
    webm = out.suffix.lower() in (".webm", ".mkv")
    speech = [speak(t) for t in narrations] if narrations is not None else None
    lengths = [
        max(min_seconds, (len(speech[i]) / RATE if speech else 0.0) + GAP)
        for i in range(len(images))
    ]
    frames_per = [max(1, round(s * FPS)) for s in lengths]
    out.parent.mkdir(parents=True, exist_ok=True)
    parts, t = [], 0.0
    with av.open(str(out), mode="w") as container:
        video = container.add_stream("libvpx" if webm else "mpeg4", rate=FPS)
        video.width, video.height = SIZE
        video.pix_fmt = "yuv420p"
        audio = None
        if speech is not None:
            audio = container.add_stream(
                "libopus" if webm else "aac", rate=48_000 if webm else RATE
            )
            audio.layout = "mono"
        pts = 0
        for i, path in enumerate(images):
            picture = av.VideoFrame.from_image(_letterbox(path))
            for _ in range(frames_per[i]):
                picture.pts = pts
                picture.time_base = Fraction(1, FPS)
                container.mux(video.encode(picture))
                pts += 1
            span = frames_per[i] / FPS
            parts.append(ClipPart(path.name, narrations[i] if narrations else "", t, t + span))
            t += span
        container.mux(video.encode(None))
        if audio is not None and speech is not None:
            track = np.zeros(round(t * RATE), dtype=np.float32)
            for part, samples in zip(parts, speech, strict=True):
                at = round(part.t_start * RATE)
                n = min(len(samples), len(track) - at)
                track[at : at + n] = samples[:n]
            _write_audio(av, container, audio, track)
    return ConstructedClip(out, parts)


def _write_audio(av: object, container: object, stream: object, track: np.ndarray) -> None:
    """Encode mono float samples at 16 kHz, resampled to the stream's rate and format."""
    resampler = av.AudioResampler(  # type: ignore[attr-defined]
        format=stream.codec_context.format.name,  # type: ignore[attr-defined]
        layout="mono",
        rate=stream.codec_context.sample_rate,  # type: ignore[attr-defined]
    )
    block = 1024 * 4
    pcm = (np.clip(track, -1, 1) * 32767).astype(np.int16)
    for start in range(0, len(pcm), block):
        frame = av.AudioFrame.from_ndarray(  # type: ignore[attr-defined]
            pcm[None, start : start + block], format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        for piece in resampler.resample(frame):
            container.mux(stream.encode(piece))  # type: ignore[attr-defined]
    for piece in resampler.resample(None):
        container.mux(stream.encode(piece))  # type: ignore[attr-defined]
    container.mux(stream.encode(None))  # type: ignore[attr-defined]
