"""Decompression bombs, huge dimensions and deep nesting: each is refused or loaded
within a memory bound, measured as the peak RSS of a child process that loads it.

These are the small variants (quick to build); bench/fuzz.py runs the full-size ones
(1 GB streams, ten hours of audio) and records their peaks.
"""

from __future__ import annotations

import pytest

from tests.fuzz.bombs import (
    Bomb,
    deflate_bomb,
    flac_silence,
    gzip_bomb,
    html_deep,
    json_deep,
    measure,
    pdf_stream_bomb,
    png_huge_dimensions,
    png_zlib_bomb,
    video_huge_frames,
    zip_bomb,
)

MB = 1 << 20
# (bomb, what the outcome must say, the peak memory above baseline it may take, in MB)
CASES = [
    (Bomb("png-huge", ".png", png_huge_dimensions, "image"), "decompression bomb", 20),
    # 60 MP is under the image limit: decoded, but as one 60 MB greyscale + 180 MB RGB
    (Bomb("png-60MP", ".png", png_zlib_bomb, "image"), None, 400),
    (Bomb("pdf-300MB", ".pdf", lambda: pdf_stream_bomb(300 * MB)), "decompression bomb", 50),
    (Bomb("gzip-as-txt", ".txt", lambda: gzip_bomb(64 * MB)), "gzip archive", 20),
    (Bomb("zip-as-jsonl", ".jsonl", lambda: zip_bomb(64 * MB)), "ZIP archive", 20),
    (Bomb("jsonl-deep", ".jsonl", json_deep), "nested too deeply", 50),
    (Bomb("html-deep", ".html", html_deep), None, 100),
    (Bomb("mp4-8000x6000", ".mp4", video_huge_frames, "video"), "over the 40 MP limit", 150),
]


@pytest.mark.parametrize(("bomb", "says", "max_mb"), CASES, ids=[c[0].name for c in CASES])
def test_a_bomb_fails_alone_within_bounded_memory(bomb, says, max_mb, tmp_path):
    outcome = measure(bomb, tmp_path)
    assert "crash" not in outcome, outcome
    if says is not None:
        text = outcome.get("reason") or " ".join(outcome.get("skipped", []))
        assert says in text, outcome
    assert outcome["extra_mb"] < max_mb, outcome


def test_a_deep_jsonl_record_is_skipped_and_the_next_one_kept(tmp_path):
    from mmrag.ingest.files import load

    path = tmp_path / "deep.jsonl"
    path.write_bytes(json_deep())
    loaded = load(path)
    assert [s.source_id for s in loaded.sources] == ["good"]
    assert "line 1: nested too deeply" in loaded.skipped[0].reason


def test_a_pdf_stream_under_the_limit_still_loads():
    from pathlib import Path

    from mmrag.ingest.files import RawFile
    from mmrag.ingest.pdf_loader import load_pdf

    raw = RawFile(Path("/spaces.pdf"), pdf_stream_bomb(8 * MB), 0.0)
    (source,) = load_pdf(raw).sources
    assert source.metadata["pages"] == 1
    assert len(deflate_bomb(8 * MB)) < 16_000  # the guard measured a real 500:1 stream


def test_long_audio_is_decoded_up_to_its_limit_and_says_so():
    """An hour of silence is 0.7 MB of FLAC and 230 MB decoded: with a 60 s limit only
    60 s are held, and the result is marked cut."""
    from mmrag.media.decode import decode_audio

    audio = decode_audio(flac_silence(3600), max_seconds=60)
    assert audio.cut and audio.duration == 60.0
    assert audio.samples.nbytes == 60 * 16_000 * 4
    short = decode_audio(flac_silence(60), max_seconds=120)
    assert not short.cut and short.duration == pytest.approx(60.0, abs=0.1)


def test_the_audio_loader_notes_where_it_cut(tmp_path, whisper):
    from mmrag.ingest.audio_loader import make_audio_loader
    from mmrag.ingest.files import LOADERS, MEDIA_KINDS, load, loader_entries

    path = tmp_path / "long.flac"
    path.write_bytes(flac_silence(600))
    loader = make_audio_loader(whisper, tags=False, max_seconds=5)
    (source,) = load(path, {**LOADERS, **loader_entries([".flac"], loader, MEDIA_KINDS)}).sources
    assert source.metadata["cut_at"] == 5.0
    assert all(d.span.t_end <= 5.0 for d in source.media)
