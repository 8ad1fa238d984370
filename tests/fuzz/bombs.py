"""Hostile inputs built on the fly, and a child process that loads one and reports its
peak memory: decompression bombs, huge declared dimensions, deep nesting.

Each bomb is small on disk and large (or deep) once decoded. `measure` loads it in a
fresh interpreter and reads its peak RSS (VmHWM, which starts afresh at exec, where
ru_maxrss keeps the parent's), above the baseline after importing the loaders.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.pdfs import assemble

ROOT = Path(__file__).resolve().parents[2]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_huge_dimensions(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header declaring width x height RGB pixels, with a few bytes of data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_zlib_bomb(side: int = 7_900) -> bytes:
    """A real greyscale PNG of side x side black pixels (about 60 MP, under the image
    limit): tens of KB on disk, every pixel decoded."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def deflate_bomb(size: int, chunk: bytes = b" " * (1 << 20)) -> bytes:
    """A zlib stream of `size` bytes of spaces (about 1000:1)."""
    deflate = zlib.compressobj(9)
    parts = [deflate.compress(chunk) for _ in range(size // len(chunk))]
    parts.append(deflate.flush())
    return b"".join(parts)


def pdf_stream_bomb(decoded: int = 1 << 30) -> bytes:
    """A one-page PDF whose content stream is FlateDecode of `decoded` bytes of spaces."""
    stream = deflate_bomb(decoded)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Filter /FlateDecode /Length "
        + str(len(stream)).encode()
        + b" >>\nstream\n"
        + stream
        + b"\nendstream",
    ]
    return assemble(objects)


def gzip_bomb(decoded: int = 1 << 30) -> bytes:
    """gzip of `decoded` bytes of spaces (a file named .txt holding it is refused by sniffing)."""
    import gzip

    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as f:
        chunk = b" " * (1 << 20)
        for _ in range(decoded // len(chunk)):
            f.write(chunk)
    return buf.getvalue()


def zip_bomb(decoded: int = 1 << 30) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("corpus.jsonl", "w") as f:
            chunk = b" " * (1 << 20)
            for _ in range(decoded // len(chunk)):
                f.write(chunk)
    return buf.getvalue()


def flac_silence(seconds: float, rate: int = 16_000) -> bytes:
    """`seconds` of silence as FLAC: an hour is about 0.7 MB, 230 MB once decoded."""
    import av

    buf = io.BytesIO()
    minute = rate * 60
    with av.open(buf, mode="w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, minute), np.int16), "s16", "mono")
        frame.sample_rate = rate
        for i in range(int(np.ceil(seconds / 60))):
            frame.pts = i * minute
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def video_huge_frames(width: int = 8_000, height: int = 6_000, frames: int = 2) -> bytes:
    """An MPEG-4 video (the codec stops at 8191 px) of black width x height frames: a few
    hundred KB, as black compresses."""
    from tests.fuzz.seeds import encode_video

    black = np.zeros((height, width, 3), np.uint8)
    return encode_video([black] * frames, 1, codec="mpeg4")


def json_deep(depth: int = 100_000) -> bytes:
    """A JSONL file whose first record nests `depth` arrays, then a good record."""
    deep = b'{"id": "deep", "text": "x", "nest": ' + b"[" * depth + b"]" * depth + b"}"
    good = json.dumps({"id": "good", "text": "a good record after a bad one"}).encode()
    return deep + b"\n" + good + b"\n"


def html_deep(depth: int = 200_000) -> bytes:
    body = b"<div>" * depth + b"deep text" + b"</div>" * depth
    return b"<html><body>" + body + b"</body></html>"


@dataclass(frozen=True)
class Bomb:
    name: str
    suffix: str
    build: Callable[[], bytes]
    loader: str = "default"  # a key of LOADER_CODE: which loader table the child uses


# What the child loads with: the default table, or a loader with its model off.
LOADER_CODE = {
    "default": "table = None",
    "image": (
        "from mmrag.ingest.image_loader import make_image_loader\n"
        "table = {**LOADERS, **loader_entries(['.png'], make_image_loader(ocr='never'),"
        " IMAGE_KINDS)}"
    ),
    "video": (
        "from mmrag.ingest.video_loader import make_video_loader\n"
        "table = {**LOADERS, **loader_entries(['.mp4'], make_video_loader(transcriber=None),"
        " MEDIA_KINDS)}"
    ),
    # decoding is the part a bomb attacks; Whisper then reads at most max_seconds of it
    "audio": "from mmrag.media.decode import decode_audio",
}
_CHILD = """
import json, sys
from pathlib import Path
from mmrag.errors import IngestError
from mmrag.ingest.files import IMAGE_KINDS, LOADERS, MEDIA_KINDS, load, loader_entries
{loader}
import PIL.Image, av, pypdfium2  # imported before the baseline, as an indexer would have
def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm_kb()
path = Path(sys.argv[1])
try:
    if {audio}:
        audio = decode_audio(path)
        outcome = {{"ok": True, "decoded_seconds": audio.duration, "cut": audio.cut}}
    else:
        loaded = load(path, table)
        outcome = {{"ok": True, "sources": len(loaded.sources),
                   "skipped": [e.reason for e in loaded.skipped][:3]}}
except IngestError as exc:
    outcome = {{"ok": False, "reason": exc.reason}}
except BaseException as exc:
    outcome = {{"ok": False, "crash": f"{{type(exc).__name__}}: {{str(exc)[:200]}}"}}
peak = hwm_kb()
outcome.update(base_mb=round(base / 1024, 1), peak_mb=round(peak / 1024, 1),
               extra_mb=round((peak - base) / 1024, 1))
print(json.dumps(outcome))
"""


def measure(bomb: Bomb, folder: Path, timeout: float = 300) -> dict[str, object]:
    """Load the bomb in a child interpreter; its outcome and peak RSS above baseline (MB)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{bomb.name}{bomb.suffix}"
    path.write_bytes(bomb.build())
    code = _CHILD.format(loader=LOADER_CODE[bomb.loader], audio=bomb.loader == "audio")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if done.returncode != 0 or not done.stdout.strip():
        return {"ok": False, "crash": f"exit {done.returncode}: {done.stderr[-400:]}"}
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    outcome["file_bytes"] = path.stat().st_size
    path.unlink()
    return outcome


BOMBS = [
    Bomb("png-100000x100000", ".png", png_huge_dimensions, "image"),
    Bomb("png-60MP-zlib", ".png", png_zlib_bomb, "image"),
    Bomb("pdf-1GB-stream", ".pdf", pdf_stream_bomb),
    Bomb("gzip-1GB-as-txt", ".txt", gzip_bomb),
    Bomb("zip-1GB-as-jsonl", ".jsonl", zip_bomb),
    Bomb("jsonl-nested-100000", ".jsonl", json_deep),
    Bomb("html-nested-200000", ".html", html_deep),
    Bomb("flac-10h-silence", ".flac", lambda: flac_silence(10 * 3600), "audio"),
    Bomb("mp4-8000x6000", ".mp4", video_huge_frames, "video"),
]
