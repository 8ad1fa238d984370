"""`mmrag index`: read, chunk, embed and store files and folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.cli.console import console, err, interactive
from mmrag.cli.store_location import StoreOpt, open_store_at, store_location
from mmrag.errors import MMRagError


def index(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
    store: StoreOpt = None,
    encoder: Annotated[
        str,
        typer.Option(
            help="Text encoder kind: onnx (default: BGE-small INT8), sentence-transformers "
            "or use-multilingual (Chinese and 15 other languages)."
        ),
    ] = "onnx",
    model: Annotated[
        str | None, typer.Option(help="Model name, local path or hub id for the text encoder.")
    ] = None,
    dense: Annotated[bool, typer.Option(help="Compute text vectors (off: sparse only).")] = True,
    image_encoder: Annotated[
        str,
        typer.Option(
            help="Image-text encoder: auto (lit when images are present), lit, conse, clip, "
            "siglip, or none."
        ),
    ] = "auto",
    image_model: Annotated[
        str | None, typer.Option(help="Hub id or path for a clip/siglip image encoder.")
    ] = None,
    ocr: Annotated[
        str, typer.Option(help="OCR images and scanned pages: auto, always, never.")
    ] = "auto",
    pdf_pages: Annotated[bool, typer.Option(help="Also index PDF pages as images.")] = False,
    asr: Annotated[
        str,
        typer.Option(
            help="Whisper for speech in audio and video: tiny.en, base (multilingual, "
            "language detected), a path, a hub id, or none (video frames only)."
        ),
    ] = "tiny.en",
    audio_encoder: Annotated[
        str | None, typer.Option(help="Audio-text encoder for sounds: clap (with --audio-model).")
    ] = None,
    audio_model: Annotated[
        str | None, typer.Option(help="Hub id or path of the CLAP model.")
    ] = None,
    page_encoder: Annotated[
        str | None, typer.Option(help="Late-interaction page encoder (colpali) for PDF pages.")
    ] = None,
    page_model: Annotated[
        str | None, typer.Option(help="Hub id or path of the page encoder.")
    ] = None,
    chunk_tokens: Annotated[
        int, typer.Option(help="Chunk size in tokens (0: one chunk per section).")
    ] = 256,
    overlap: Annotated[int, typer.Option(help="Token overlap between chunks.")] = 32,
    prune: Annotated[
        bool, typer.Option(help="Delete stored files under PATHS that no longer exist.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="in-process, or ray: read, chunk and embed with Ray Data.")
    ] = "in-process",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address (auto, ray://host:10001); default: a local Ray."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Embedding workers: threads sharing each batch (one core each), or Ray "
            "workers with --engine ray (each loads the models once).",
        ),
    ] = 2,
) -> None:
    """Index files and folders: text, Markdown, HTML, PDF, JSONL, images, audio, video.

    Unchanged files are skipped; changed ones are updated.
    """
    from mmrag.index.av_indexing import setup_av_indexing
    from mmrag.index.image_embedder import setup_image_indexing
    from mmrag.index.indexer import Indexer
    from mmrag.models.text import load_text_encoder

    if ocr not in ("auto", "always", "never"):
        raise MMRagError(f"--ocr takes auto, always or never, not {ocr!r}")
    if engine not in ("in-process", "ray"):
        raise MMRagError(f"--engine takes in-process or ray, not {engine!r}")
    if engine == "ray" and (pdf_pages or page_encoder):
        raise MMRagError("--pdf-pages and --page-encoder need --engine in-process")
    with open_store_at(store, create=True) as st:
        if engine == "ray":
            from mmrag.ingest.ray_engine import IndexEmbedders, RayOptions, index_paths_with_ray

            report = index_paths_with_ray(
                st,
                paths,
                IndexEmbedders(
                    text=encoder if dense else None,
                    text_model=model,
                    image_encoder=image_encoder_choice(st, paths, image_encoder),
                    image_model=image_model,
                    ocr=ocr,
                ),
                options=RayOptions(address=address, workers=workers),
                chunk_tokens=chunk_tokens,
                overlap=overlap,
                prune=prune,
            )
        else:
            enc = None
            if dense:
                enc = load_text_encoder(encoder, **({"model": model} if model else {}))
                if encoder == "sentence-transformers" and workers > 1:
                    import torch

                    # one torch thread per worker: two workers of one thread beat one of
                    # two on SciFact (docs/performance.md, "Indexing throughput")
                    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
            chosen = image_encoder_choice(st, paths, image_encoder)
            embedders = setup_image_indexing(
                # page vectors live in an embedded store's folder; a server store has none
                getattr(st, "path", None),
                chosen,
                image_model,
                ocr,
                pdf_pages,
                page_encoder,
                page_model,
            )
            embedders = setup_av_indexing(
                # thumbnails go to the store folder, or a server store's blob folder
                getattr(st, "blob_root", None) or st.path,
                embedders,
                None if asr == "none" else asr,
                audio_encoder,
                audio_model,
            )
            indexer = Indexer(
                st,
                enc,
                embedders=embedders,
                chunk_tokens=chunk_tokens,
                overlap=overlap,
                encode_workers=workers,
                progress=interactive(),
            )
            report = indexer.index_paths(paths, prune=prune)
    for e in report.errors:
        err.print(f"[yellow]skipped[/yellow] {e.path}: {e.reason}")
    console.print(f"[green]indexed[/green] {report.summary()} -> {store_location(store)}")
    if report.errors and not (report.added or report.updated or report.unchanged):
        raise typer.Exit(1)


def image_encoder_choice(st: Any, paths: list[Path], choice: str) -> str | None:
    """'auto' keeps the store's image encoder, or picks lit when the paths hold images."""
    if choice == "none":
        return None
    stored = st.fields().get("image")
    if choice != "auto":
        return choice
    if stored:
        return stored["encoder"]["kind"]
    from mmrag.ingest.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, iter_files

    existing = [p for p in paths if p.exists()]
    visual = (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES)  # video shots are embedded by their keyframes
    has_images = any(p.suffix.lower() in visual for p in iter_files(existing))
    return "lit" if has_images else None
