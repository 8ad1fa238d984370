"""Decode audio and video with PyAV (its wheel carries FFmpeg): what a media file holds,
its audio as 16 kHz mono float32, and sampled video frames as RGB images.

Decoding errors half-way through a stream keep what was decoded before them (a
truncated download is still worth indexing) and say so (`truncated`); a file that
yields nothing raises IngestError naming it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.errors import IngestError
from mmrag.registry import require

if TYPE_CHECKING:
    from PIL import Image

MediaSource = str | Path | bytes
# Limits against decompression bombs: an hour of silent FLAC is 0.7 MB on disk and 230 MB
# decoded, so the length of decoded media is bounded, not the file size. Past MAX_SECONDS
# (two hours: 460 MB of 16 kHz float32) the rest of a file is not decoded. A video frame
# larger than MAX_VIDEO_PIXELS (8K UHD is 33 MP) is refused: decoding one takes w*h*1.5
# bytes per frame in flight, and its RGB image three times w*h.
MAX_SECONDS = 2 * 3600.0
MAX_VIDEO_PIXELS = 40_000_000


@dataclass(frozen=True, slots=True)
class MediaInfo:
    duration: float  # seconds (container's, else the longest stream's; 0 when unknown)
    has_audio: bool
    has_video: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    format: str = ""


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    samples: np.ndarray  # float32 mono
    rate: int
    truncated: bool = False  # decoding stopped at a corrupt part
    cut: bool = False  # decoding stopped at the length limit (max_seconds)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


@dataclass(frozen=True, slots=True)
class Frame:
    time: float  # seconds
    image: Image.Image


def _av() -> Any:
    return require("av", "audio")


def _name(src: MediaSource, name: str | None = None) -> str:
    if name:
        return name
    return "<bytes>" if isinstance(src, bytes) else str(src)


def open_container(src: MediaSource, name: str | None = None) -> Any:
    """An open PyAV container; `name` is what errors call the file (default: its path)."""
    av = _av()
    name = _name(src, name)
    try:
        return av.open(io.BytesIO(src) if isinstance(src, bytes) else str(src), mode="r")
    except FileNotFoundError as exc:
        raise IngestError(name, "no such file or directory") from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise IngestError(name, f"not a readable audio/video file: {exc}") from exc


def _decodable(streams: Any) -> Any | None:
    """The first stream FFmpeg has a decoder for: a damaged header can name a codec that
    does not exist, and such a stream has no codec context (None) to decode with."""
    return next((s for s in streams if s.codec_context is not None), None)


def _duration(container: Any) -> float:
    if container.duration:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    spans = [
        float(s.duration * s.time_base)
        for s in container.streams
        if s.duration is not None and s.time_base is not None
    ]
    return max(spans, default=0.0)


def probe(src: MediaSource, name: str | None = None) -> MediaInfo:
    """What streams a media file holds, from its headers."""
    with open_container(src, name) as container:
        video = _decodable(container.streams.video)
        return MediaInfo(
            duration=_duration(container),
            has_audio=_decodable(container.streams.audio) is not None,
            has_video=video is not None,
            width=video.codec_context.width if video is not None else 0,
            height=video.codec_context.height if video is not None else 0,
            fps=float(video.average_rate) if video is not None and video.average_rate else 0.0,
            format=container.format.name,
        )


def decode_audio(
    src: MediaSource,
    rate: int = 16_000,
    name: str | None = None,
    max_seconds: float | None = MAX_SECONDS,
) -> DecodedAudio:
    """The first audio stream, resampled to `rate` Hz mono float32 in [-1, 1]; decoding
    stops after `max_seconds` (None: no limit), and the result says it was cut."""
    av = _av()
    name = _name(src, name)
    limit = None if max_seconds is None else max(1, int(max_seconds * rate))
    truncated = cut = False
    with open_container(src, name) as container:
        stream = _decodable(container.streams.audio)
        if stream is None:
            raise IngestError(name, "has no audio track (or none FFmpeg can decode)")
        samples = _Samples(int(_duration(container) * rate * 1.02) + rate, limit)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        try:
            for frame in container.decode(stream):
                for piece in resampler.resample(frame):
                    samples.add(piece.to_ndarray().reshape(-1))
                if samples.full:
                    cut = True
                    break
        except (av.error.FFmpegError, ValueError) as exc:
            if not samples.count:
                raise IngestError(name, f"corrupt audio: {exc}") from exc
            truncated = True
        if not cut:
            for piece in resampler.resample(None):
                samples.add(piece.to_ndarray().reshape(-1))
    if not samples.count:
        raise IngestError(name, "the audio track holds no samples (empty or corrupt)")
    out = samples.array()
    # A damaged float stream can decode to NaN or infinity, which no model may see. In
    # blocks: nan_to_num's masks over two hours of audio would take another 560 MB.
    for start in range(0, len(out), 1 << 20):
        block = out[start : start + (1 << 20)]
        np.nan_to_num(block, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
        np.clip(block, -1.0, 1.0, out=block)
    return DecodedAudio(out, rate, truncated, cut)


class _Samples:
    """A float32 buffer sized from the container's duration, grown if that was wrong, and
    never past `limit`: decoded audio is held once (a list of pieces joined at the end
    would be held twice, and the joined copy is what a long file cannot afford)."""

    def __init__(self, expected: int, limit: int | None) -> None:
        self.limit = limit
        size = min(expected, limit) if limit is not None else expected
        self.buffer = np.empty(max(size, 1), np.float32)
        self.count = 0

    @property
    def full(self) -> bool:
        return self.limit is not None and self.count >= self.limit

    def add(self, piece: np.ndarray) -> None:
        if self.limit is not None:
            piece = piece[: self.limit - self.count]
        end = self.count + len(piece)
        if end > len(self.buffer):
            grown = max(end, 2 * len(self.buffer))
            if self.limit is not None:
                grown = min(grown, self.limit)
            bigger = np.empty(grown, np.float32)
            bigger[: self.count] = self.buffer[: self.count]
            self.buffer = bigger
        self.buffer[self.count : end] = piece
        self.count = end

    def array(self) -> np.ndarray:
        if self.count < 0.8 * len(self.buffer):  # a duration that was far too long
            return self.buffer[: self.count].copy()
        return self.buffer[: self.count]


def iter_frames(
    src: MediaSource,
    every: float,
    max_side: int | None = 384,
    name: str | None = None,
    max_seconds: float | None = MAX_SECONDS,
) -> Iterator[Frame]:
    """Frames of the first video stream, at most one per `every` seconds, as RGB images,
    up to `max_seconds` into the stream.

    Frames are decoded in order (no seeking: a keyframe-sparse stream would otherwise
    be decoded many times over) and only the sampled ones are converted to images.
    A decoding error ends the stream; the caller sees it as fewer frames. A stream whose
    frames are over MAX_VIDEO_PIXELS raises IngestError.
    """
    av = _av()
    bilinear = require("PIL.Image", "images").Resampling.BILINEAR  # frames become PIL images
    name = _name(src, name)
    with open_container(src, name) as container:
        stream = _decodable(container.streams.video)
        if stream is None:
            return
        _check_size(name, stream.codec_context.width, stream.codec_context.height)
        stream.thread_type = "AUTO"  # frame threads: a 2-core machine decodes ~1.7x faster
        next_time = 0.0
        try:
            for frame in container.decode(stream):
                if frame.pts is None or frame.time is None:
                    continue
                t = float(frame.time)
                if max_seconds is not None and t > max_seconds:
                    return
                if t + 1e-6 < next_time:
                    continue
                next_time = t + every
                _check_size(name, frame.width, frame.height)  # the size can change mid-stream
                image = _frame_image(frame, max_side)
                if max_side and max(image.size) > max_side:
                    image.thumbnail((max_side, max_side), bilinear)
                yield Frame(t, image.convert("RGB"))
        except (av.error.FFmpegError, ValueError):
            return


def _check_size(name: str, width: int, height: int) -> None:
    if width * height > MAX_VIDEO_PIXELS:
        raise IngestError(
            name,
            f"video frames are {width}x{height}, over the {MAX_VIDEO_PIXELS / 1e6:.0f} MP limit",
        )


def _frame_image(frame: Any, max_side: int | None) -> Image.Image:
    """A frame as an image; a frame far larger than `max_side` is first scaled down by
    FFmpeg, so its full-size RGB copy is never made."""
    if max_side and max(frame.width, frame.height) > 4 * max_side:
        scale = 2 * max_side / max(frame.width, frame.height)
        width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        return frame.reformat(width=width, height=height, format="rgb24").to_image()
    return frame.to_image()
