"""What `mmrag index` needs for audio and video: loaders with the chosen Whisper model and
the store's thumbnail folder, and the field embedders for shots and sounds.

    embedders = setup_image_indexing(store_dir, ...)
    embedders = setup_av_indexing(store_dir, embedders, transcriber="tiny.en")
    Indexer(store, text_encoder, embedders=embedders)

Thumbnails go to `<store>/media/`, never outside the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmrag.index.embedders import FieldEmbedder
from mmrag.index.image_embedder import ImageFieldEmbedder

MEDIA_FOLDER = "media"


def media_dir(store_path: str | Path) -> Path:
    return Path(store_path) / MEDIA_FOLDER


def setup_av_indexing(
    store_path: str | Path | None,
    embedders: Sequence[FieldEmbedder] = (),
    transcriber: str | None = "tiny.en",
    audio_encoder: str | None = None,
    audio_model: str | None = None,
    language: str | None = None,
) -> list[FieldEmbedder]:
    """Register the audio and video loaders; return `embedders` with the image field
    extended to video shots (meanP) and, when `audio_encoder` is set, an audio field.

    `transcriber`: Whisper "tiny.en", "base", a path or hub id (None: videos are indexed
    by their frames only; audio files keep the default loader, which transcribes).
    """
    from mmrag.errors import ConfigError
    from mmrag.ingest.audio_loader import make_audio_loader
    from mmrag.ingest.files import AUDIO_SUFFIXES, MEDIA_KINDS, VIDEO_SUFFIXES, register_loader
    from mmrag.ingest.video_loader import make_video_loader

    if transcriber is not None:
        register_loader(AUDIO_SUFFIXES, make_audio_loader(transcriber, language), MEDIA_KINDS)
    thumbs = media_dir(store_path) if store_path is not None else None
    register_loader(
        VIDEO_SUFFIXES,
        make_video_loader(transcriber, media_dir=thumbs, language=language),
        MEDIA_KINDS,
    )
    out: list[FieldEmbedder] = []
    for e in embedders:
        if type(e) is ImageFieldEmbedder:
            from mmrag.index.video_embedder import VISUAL_AND_VIDEO, ShotFieldEmbedder

            modalities = tuple(dict.fromkeys([*e.modalities, *VISUAL_AND_VIDEO]))
            e = ShotFieldEmbedder(e.encoder, e.field, modalities, e.texts, e.batch_size)
        out.append(e)
    if audio_encoder:
        from mmrag.index.audio_embedder import AudioFieldEmbedder
        from mmrag.models.clap import load_audio_encoder

        if not audio_model:
            raise ConfigError("an audio encoder needs --audio-model (a CLAP hub id or path)")
        out.append(AudioFieldEmbedder(load_audio_encoder(audio_encoder, model=audio_model)))
    return out
