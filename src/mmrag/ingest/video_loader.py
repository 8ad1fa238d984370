"""Video files (.mp4 .webm .mkv .mov) -> one VIDEO document per shot, plus the audio track's
transcript segments as AUDIO documents of the same source.

Frames are decoded by PyAV a few per second; shot changes come from colour-histogram
and thumbnail jumps (`ingest.shots`) and each shot keeps uniformly spaced keyframes. A shot document
carries its time span, the transcript that overlaps it (so text search finds what is
said during the shot) and its keyframes; its image-space vector is the mean of its
keyframes' vectors (CLIP4Clip meanP), made at index time by
`index.video_embedder.ShotFieldEmbedder`.

Keyframes are also stored as small JPEG thumbnails for display, under the store's
`media/` folder when the loader is given one (`make_video_loader(media_dir=...)`);
without one nothing is written and the embedder decodes the keyframes again.

Partial files still index: a video without an audio track gives shots only; an audio-only
.mp4 gives its transcript; a stream that breaks off keeps what came before.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import IngestError
from mmrag.ingest.audio_loader import LazyTranscriber, audio_documents
from mmrag.ingest.files import VIDEO_SUFFIXES, Loaded, Loader, RawFile
from mmrag.ingest.shots import Shot, detect_shots, frame_signature
from mmrag.ingest.spoken_numbers import with_number_aliases
from mmrag.media.decode import MAX_SECONDS, Frame, MediaInfo, decode_audio, iter_frames, probe
from mmrag.models.whisper import SAMPLE_RATE, WhisperTranscriber
from mmrag.types import Document, Modality, Span

THUMBNAIL_SIDE = 320
# Frames analysed per file at most (about 330 KB each at 384 px): a longer video is
# sampled more sparsely instead, so memory does not grow with its length.
MAX_FRAMES = 1000
__all__ = ["VIDEO_SUFFIXES", "load_video", "make_video_loader", "shot_documents"]


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def said_during(shot: Shot, t_start: float, t_end: float) -> bool:
    """A transcript segment belongs to a shot when they overlap by at least half of the
    shorter of the two: a sentence that spills a moment into the next shot stays with its
    own, while a long one that covers a short shot still describes it."""
    shorter = min(t_end - t_start, shot.end - shot.start)
    overlap = _overlap(shot.start, shot.end, t_start, t_end)
    return overlap > 0 and overlap >= 0.5 * shorter


def shot_text(shot: Shot, speech: list[Document]) -> str:
    """What is said during the shot: the transcript segments that belong to it."""
    parts = []
    for doc in speech:
        span = doc.span
        if span is None or span.t_start is None or span.t_end is None:
            continue
        if said_during(shot, span.t_start, span.t_end):
            parts.append(str(doc.metadata.get("transcript", doc.text)))
    text = " ".join(parts)
    language = speech[0].metadata.get("language") if speech else None
    return with_number_aliases(text) if text and language == "en" else text


def sample_frames(
    src: bytes, every: float, name: str, max_seconds: float | None, max_frames: int
) -> list[Frame]:
    """Frames at most one per `every` seconds; whenever `max_frames` are held, every other
    one is dropped and the interval doubles, so a long video is covered evenly."""
    frames: list[Frame] = []
    for frame in iter_frames(src, every, name=name, max_seconds=max_seconds):
        if frames and frame.time + 1e-6 < frames[-1].time + every:
            continue
        frames.append(frame)
        if len(frames) >= max_frames:
            frames = frames[::2]
            every *= 2
    return frames


def save_thumbnails(
    frames: list[Frame], shots: list[Shot], media_dir: Path, content_hash: str
) -> dict[int, str]:
    """JPEG thumbnails of every keyframe, named by the file's content hash (a re-index of
    the same bytes overwrites them instead of adding copies); position -> path."""
    media_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for shot in shots:
        for pos in shot.keyframes:
            path = media_dir / f"{content_hash[:20]}-{shot.index:04d}-{pos:05d}.jpg"
            image = frames[pos].image.copy()
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            image.save(path, "JPEG", quality=85)
            out[pos] = str(path)
    return out


def shot_documents(
    source_id: str,
    source: str,
    frames: list[Frame],
    shots: list[Shot],
    speech: list[Document],
    thumbnails: dict[int, str],
) -> list[Document]:
    docs = []
    for shot in shots:
        keyframes = [
            {
                "t": round(frames[p].time, 3),
                **({"thumbnail": thumbnails[p]} if p in thumbnails else {}),
            }
            for p in shot.keyframes
        ]
        meta: dict[str, Any] = {
            "kind": "shot",
            "shot": shot.index,
            "keyframes": keyframes,
            "width": frames[shot.keyframes[0]].image.width,
            "height": frames[shot.keyframes[0]].image.height,
        }
        middle = shot.keyframes[len(shot.keyframes) // 2]
        if middle in thumbnails:
            meta["thumbnail"] = thumbnails[middle]
        docs.append(
            Document(
                id=f"{source_id}#shot={shot.index}",
                text=shot_text(shot, speech),
                modality=Modality.VIDEO,
                source_id=source_id,
                source=source,
                media=source,
                span=Span(t_start=round(shot.start, 2), t_end=round(shot.end, 2)),
                metadata=meta,
            )
        )
    return docs


def make_video_loader(
    transcriber: WhisperTranscriber | str | None = "tiny.en",
    media_dir: str | Path | None = None,
    sample_every: float = 0.25,
    keyframe_every: float = 2.0,
    shot_threshold: float = 0.3,
    min_shot: float = 0.5,
    language: str | None = None,
    max_seconds: float | None = MAX_SECONDS,
    max_frames: int = MAX_FRAMES,
) -> Loader:
    """A loader with its own settings, for a loader table's VIDEO_SUFFIXES
    (`indexing.build.loader_table` makes one from an IndexConfig).

    `transcriber`: Whisper for the audio track (None: skip it); `media_dir`: where
    thumbnails go (inside the store); `sample_every`: seconds between analysed frames;
    `keyframe_every`: seconds between keyframes within a shot; `max_seconds`: how much
    of a file is decoded; `max_frames`: frames analysed at most (sampled sparser beyond).
    """
    whisper = LazyTranscriber(transcriber) if transcriber is not None else None
    thumbs = Path(media_dir) if media_dir is not None else None

    def load(raw: RawFile) -> Loaded:
        info = probe(raw.data, name=str(raw.path))
        if not info.has_video and not info.has_audio:
            raise raw.error("holds neither a video nor an audio track")
        source_id = str(raw.path)
        meta: dict[str, Any] = _media_metadata(info)
        if max_seconds is not None and info.duration > max_seconds:
            meta["cut_at"] = max_seconds  # what lies past the length limit is not indexed
        docs: list[Document] = []
        if info.has_audio and whisper is not None:
            audio = decode_audio(raw.data, SAMPLE_RATE, name=str(raw.path), max_seconds=max_seconds)
            docs, audio_meta = audio_documents(source_id, source_id, audio, whisper.get(), language)
            meta.update({k: v for k, v in audio_meta.items() if k != "duration"})
            if not info.has_video:
                meta["duration"] = audio_meta["duration"]
        if info.has_video:
            speech = [d for d in docs if d.metadata.get("kind") == "speech"]
            frames = sample_frames(raw.data, sample_every, str(raw.path), max_seconds, max_frames)
            if frames:
                shots = detect_shots(
                    [f.time for f in frames],
                    np.stack([frame_signature(f.image) for f in frames]),
                    info.duration,
                    shot_threshold,
                    min_shot,
                    keyframe_every,
                )
                saved = save_thumbnails(frames, shots, thumbs, raw.content_hash()) if thumbs else {}
                docs = shot_documents(source_id, source_id, frames, shots, speech, saved) + docs
                meta["shots"] = len(shots)
            elif not docs:
                raise raw.error("the video track holds no decodable frame and there is no audio")
            else:
                meta["video_error"] = "no decodable frame"
        if not docs:
            raise IngestError(source_id, "nothing indexable in this file")
        meta["title"] = raw.path.stem
        source = raw.source(raw.path.stem, [], meta)
        return Loaded([replace(source, media=docs)])

    return load


def _media_metadata(info: MediaInfo) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "duration": round(info.duration, 3),
        "container": info.format,
        "has_audio": info.has_audio,
        "has_video": info.has_video,
    }
    if info.has_video:
        meta.update({"width": info.width, "height": info.height, "fps": round(info.fps, 3)})
    return meta


def load_video(raw: RawFile) -> Loaded:
    """The default video loader (Whisper tiny.en, no thumbnails on disk), registered in
    files.py; an indexer's own table (`indexing.build.loader_table`) has one writing
    thumbnails to the store's media/."""
    global _default
    if _default is None:
        _default = make_video_loader()
    return _default(raw)


_default: Loader | None = None
