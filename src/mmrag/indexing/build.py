"""From an `IndexConfig` to a working indexer: its file loaders, its field embedders.

    indexer = build_indexer(store, config, visual=has_visual_files(paths))
    report = indexer.index_paths(paths)

The CLI, the server's uploads and the Ray engine's workers all build from here, so a
config means the same thing to each. Each indexer gets a loader table of its own (the
default table with the config's loaders in it); no module-level table is changed, so
two indexers with different settings live side by side in one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmrag.index.base import Store
from mmrag.index.embedders import FieldEmbedder, TextFieldEmbedder
from mmrag.indexing.config import AUTO, IndexConfig
from mmrag.indexing.indexer import Indexer
from mmrag.ingest.files import (
    AUDIO_SUFFIXES,
    IMAGE_KINDS,
    IMAGE_SUFFIXES,
    LOADERS,
    MEDIA_KINDS,
    VIDEO_SUFFIXES,
    ConfiguredLoader,
    ContentKind,
    LoaderEntry,
    iter_files,
    loader_entries,
)

MEDIA_FOLDER = "media"  # video thumbnails, inside the store's media root
# Files whose pictures go to the image field ('auto' picks an encoder when one is there);
# a video shot is embedded by its keyframes.
VISUAL_SUFFIXES = frozenset((*IMAGE_SUFFIXES, *VIDEO_SUFFIXES))


def build_indexer(
    store: Store,
    config: IndexConfig,
    *,
    visual: bool = False,
    progress: bool = False,
    store_lock: Any = None,
) -> Indexer:
    """The indexer `config` describes, writing to `store`. `visual`: the input holds
    images or video, so image_encoder 'auto' picks one even for a store without an
    image field (`has_visual_files` tells, for paths)."""
    chosen = decide_auto(config, store.fields(), visual)
    if chosen.text_encoder == "sentence-transformers" and chosen.workers > 1:
        import torch

        # one torch thread per worker: two workers of one thread beat one of two on
        # SciFact (docs/performance.md, "Indexing throughput")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // chosen.workers))
    return Indexer(
        store,
        embedders=field_embedders(chosen, store.media_root),
        loaders=loader_table(chosen, store.media_root),
        chunk_tokens=chosen.chunk_tokens,
        overlap=chosen.overlap,
        encode_workers=chosen.workers,
        store_lock=store_lock,
        progress=progress,
    )


def decide_auto(config: IndexConfig, fields: Mapping[str, Any], visual: bool) -> IndexConfig:
    """`config` with image_encoder 'auto' decided: the kind of the store's image field,
    else lit when the input is `visual`, else none."""
    if config.image_encoder != AUTO:
        return config
    stored = fields.get("image")
    if stored:
        kind = stored["encoder"]["kind"]
    else:
        kind = "lit" if visual else None
    return config.replace(image_encoder=kind, image_model=config.image_model)


def is_visual(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VISUAL_SUFFIXES


def has_visual_files(paths: Iterable[str | Path]) -> bool:
    """Whether any file under `paths` is an image or a video."""
    existing = [Path(p) for p in paths if Path(p).exists()]
    return any(is_visual(p) for p in iter_files(existing))


def media_dir(media_root: str | Path) -> Path:
    """Where the indexer writes derived media (video thumbnails) for a store."""
    return Path(media_root) / MEDIA_FOLDER


def loader_table(config: IndexConfig, media_root: str | Path | None) -> dict[str, LoaderEntry]:
    """The default table with the loaders `config` sets: images read at its OCR mode,
    PDFs also as pages when asked, speech transcribed by its Whisper model, and video
    thumbnails written under `media_root`'s media/ (none when `media_root` is None)."""
    table = dict(LOADERS)  # the defaults, and any format a caller registered there
    table.update(
        loader_entries(
            IMAGE_SUFFIXES,
            ConfiguredLoader("mmrag.ingest.image_loader:make_image_loader", ocr=config.ocr),
            IMAGE_KINDS,
        )
    )
    if config.pdf_pages or config.page_encoder:
        pages = ConfiguredLoader(
            "mmrag.ingest.pdf_pages:make_pdf_pages_loader", ocr=config.ocr != "never"
        )
        table.update(loader_entries([".pdf"], pages, [ContentKind.PDF]))
    if config.asr is not None:
        audio = ConfiguredLoader(
            "mmrag.ingest.audio_loader:make_audio_loader", transcriber=config.asr
        )
        table.update(loader_entries(AUDIO_SUFFIXES, audio, MEDIA_KINDS))
    video = ConfiguredLoader(
        "mmrag.ingest.video_loader:make_video_loader",
        transcriber=config.asr,
        media_dir=None if media_root is None else str(media_dir(media_root)),
    )
    table.update(loader_entries(VIDEO_SUFFIXES, video, MEDIA_KINDS))
    return table


def field_embedders(config: IndexConfig, media_root: str | Path | None) -> list[FieldEmbedder]:
    """One embedder per vector field `config` asks for (its 'auto' decided first, see
    `decide_auto`): text, image (with video shots), page, audio. Page vectors keep their
    token matrices in a table under `media_root`."""
    if config.image_encoder == AUTO:
        raise ValueError("decide image_encoder 'auto' first (decide_auto)")
    out: list[FieldEmbedder] = []
    if config.text_encoder:
        from mmrag.models.text import load_text_encoder

        encoder = load_text_encoder(config.text_encoder, **_model(config.text_model))
        out.append(TextFieldEmbedder(encoder))
    if config.image_encoder:
        from mmrag.index.video_embedder import ShotFieldEmbedder
        from mmrag.models.image import load_image_encoder

        images = load_image_encoder(config.image_encoder, **_model(config.image_model))
        out.append(ShotFieldEmbedder(images))
    if config.page_encoder:
        from mmrag.errors import ConfigError
        from mmrag.index.multivector import MultiVectorTable, PageFieldEmbedder, table_path
        from mmrag.models.page_encoders import load_page_encoder

        if media_root is None:
            raise ConfigError("a page encoder needs a folder beside the store for its vectors")
        pages = load_page_encoder(config.page_encoder, model=config.page_model)
        out.append(PageFieldEmbedder(pages, MultiVectorTable(table_path(media_root), pages.dim)))
    if config.audio_encoder:
        from mmrag.index.audio_embedder import AudioFieldEmbedder
        from mmrag.models.clap import load_audio_encoder

        sounds = load_audio_encoder(config.audio_encoder, model=config.audio_model)
        out.append(AudioFieldEmbedder(sounds))
    return out


def _model(model: str | None) -> dict[str, str]:
    return {"model": model} if model else {}
