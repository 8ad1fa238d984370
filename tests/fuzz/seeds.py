"""Seed corpora for the loader fuzzers: real files, one small set per loader.

Text, Markdown, HTML and PDF seeds come from examples/corpus (plus PDFs written by
tests/pdfs.py and the encrypted fixture); JSONL and BEIR seeds are SciFact lines; images
are Flickr8k and SROIE photos re-encoded small in every format Pillow writes; audio is
FSDD and ESC-50 recordings (WAV, FLAC) and the same samples as MP3/Ogg/M4A; video is a
short clip of Flickr8k photos (MP4 and WebM) with and without an audio track.
Everything is built once per process and kept small, so a mutation decodes fast.
"""

from __future__ import annotations

import io
import itertools
import json
from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np

from tests.av_fixtures import encode_audio
from tests.pdfs import make_pdf

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "corpus"
ENCRYPTED_PDF = ROOT / "tests" / "ingest" / "fixtures" / "encrypted.pdf"
IMAGE_SIDE = 48  # small: a mutated image decodes in well under a millisecond
# Loader name -> the suffixes its seeds are written under.
SUFFIXES = {
    "text": ".txt",
    "markdown": ".md",
    "html": ".html",
    "jsonl": ".jsonl",
    "beir": ".jsonl",
    "pdf": ".pdf",
    "image": ".png",
    "audio": ".wav",
    "video": ".mp4",
}


def _corpus(suffix: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted(CORPUS.glob(f"*{suffix}"))]


@cache
def text_seeds() -> list[bytes]:
    utf16 = "Tides rise twice a day.\nThe Moon pulls the sea.".encode("utf-16")
    return [*_corpus(".txt"), utf16]


@cache
def markdown_seeds() -> list[bytes]:
    fenced = b"# Title\n\n```\n# not a heading\n```\n\n## Part\n\ntext\n"
    return [*_corpus(".md"), fenced]


@cache
def html_seeds() -> list[bytes]:
    latin1 = (
        b'<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head>'
        b"<body><h1>Men\xfc</h1><p>Cr\xe8me br\xfbl\xe9e</p><script>x()</script></body></html>"
    )
    return [*_corpus(".html"), latin1]


def _scifact_lines(data: Path, n: int) -> list[bytes]:
    with (data / "scifact" / "corpus.jsonl").open("rb") as f:
        return [line.rstrip(b"\n") for line in itertools.islice(f, n)]


@cache
def jsonl_seeds(data: Path) -> list[bytes]:
    lines = _scifact_lines(data, 6)
    pyserini = json.dumps({"id": 7, "contents": "Pyserini's field name", "lang": "en"})
    return [b"\n".join(lines[:3]) + b"\n", b"\n".join(lines[3:]), pyserini.encode()]


@cache
def beir_queries(data: Path) -> bytes:
    with (data / "scifact" / "queries.jsonl").open("rb") as f:
        return b"".join(itertools.islice(f, 3))


@cache
def pdf_seeds() -> list[bytes]:
    made = make_pdf(["The water cycle moves water.", "Evaporation, then rain (and snow)."])
    return [*_corpus(".pdf"), made, ENCRYPTED_PDF.read_bytes()]


def _photos(data: Path) -> list[Path]:
    flickr = sorted((data / "flickr8k" / "images").glob("*.jpg"))[:2]
    receipts = sorted((data / "sroie" / "images").glob("*.jpg"))[:1]
    return flickr + receipts


@cache
def image_seeds(data: Path) -> list[bytes]:
    """Each photo shrunk and written as JPEG, PNG (RGB, palette, RGBA), GIF, WebP, BMP, TIFF."""
    from PIL import Image

    out = []
    for path, (fmt, mode) in zip(
        itertools.cycle(_photos(data)),
        [
            ("JPEG", "RGB"),
            ("PNG", "RGB"),
            ("PNG", "P"),
            ("PNG", "RGBA"),
            ("GIF", "P"),
            ("WEBP", "RGB"),
            ("BMP", "RGB"),
            ("TIFF", "RGB"),
        ],
        strict=False,
    ):
        with Image.open(path) as photo:
            image = photo.convert("RGB")
        image.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
        buf = io.BytesIO()
        image.convert(mode).save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


def _speech(data: Path) -> np.ndarray:
    from mmrag.media.decode import decode_audio

    wav = data / "fsdd" / "recordings" / "3_george_0.wav"
    return decode_audio(wav).samples


@cache
def audio_seeds(data: Path) -> list[bytes]:
    speech = _speech(data)
    fsdd = (data / "fsdd" / "recordings" / "3_george_0.wav").read_bytes()
    esc = sorted((data / "esc50" / "audio").glob("*.flac"))[0].read_bytes()
    return [
        fsdd,
        esc,
        encode_audio(speech, 16_000, "libmp3lame", "mp3"),
        encode_audio(np.repeat(speech, 3), 48_000, "libopus", "ogg"),  # Opus: 48 kHz only
        encode_audio(speech, 16_000, "aac", "ipod"),
    ]


def encode_video(
    frames: list[np.ndarray],
    fps: int,
    container: str = "mp4",
    codec: str = "mpeg4",
    audio: np.ndarray | None = None,
) -> bytes:
    """RGB frames (and optional 16 kHz mono audio) encoded by PyAV in memory."""
    import av

    buf = io.BytesIO()
    height, width = frames[0].shape[:2]
    with av.open(buf, mode="w", format=container) as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = None
        if audio is not None:
            sound = out.add_stream("libopus" if container == "webm" else "aac", rate=48_000)
            sound.layout = "mono"
        for pts, rgb in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            picture.pts, picture.time_base = pts, Fraction(1, fps)
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        if sound is not None and audio is not None:
            resampler = av.AudioResampler(format=sound.codec_context.format.name, layout="mono")
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
            for start in range(0, len(pcm), 4096):
                frame = av.AudioFrame.from_ndarray(
                    pcm[None, start : start + 4096], format="s16", layout="mono"
                )
                frame.sample_rate = 16_000
                for piece in resampler.resample(frame):
                    out.mux(sound.encode(piece))
            for piece in resampler.resample(None):
                out.mux(sound.encode(piece))
            out.mux(sound.encode(None))
    return buf.getvalue()


@cache
def video_seeds(data: Path) -> list[bytes]:
    """Two photos as two shots (1 s each at 4 fps, 64x48), silent and with speech."""
    from PIL import Image

    frames = []
    for path in _photos(data)[:2]:
        with Image.open(path) as photo:
            rgb = np.asarray(photo.convert("RGB").resize((64, 48)))
        frames += [rgb] * 4
    speech = _speech(data)
    return [
        encode_video(frames, 4),
        encode_video(frames, 4, audio=speech),
        encode_video(frames, 4, "webm", "libvpx"),
    ]


def seeds(loader: str, data: Path) -> list[bytes]:
    """The seed files of one loader (a name of SUFFIXES)."""
    if loader == "text":
        return text_seeds()
    if loader == "markdown":
        return markdown_seeds()
    if loader == "html":
        return html_seeds()
    if loader in ("jsonl", "beir"):
        return jsonl_seeds(data)
    if loader == "pdf":
        return pdf_seeds()
    if loader == "image":
        return image_seeds(data)
    if loader == "audio":
        return audio_seeds(data)
    if loader == "video":
        return video_seeds(data)
    raise KeyError(loader)
