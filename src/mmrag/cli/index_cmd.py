"""`mmrag index`: read, chunk, embed and store files and folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.cli.console import console, err, interactive
from mmrag.cli.store_location import StoreOpt, WaitOpt, open_store_at, store_location
from mmrag.errors import MMRagError
from mmrag.indexing.config import IndexConfig

# Options left out take the store's remembered setting, else this default (so None
# below means "not given", never "off": `none` switches an encoder off).
DEFAULT = IndexConfig()


def index(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
    store: StoreOpt = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            help="Text encoder kind: onnx (BGE-small INT8), sentence-transformers or "
            f"use-multilingual (Chinese and 15 other languages). Default: {DEFAULT.text_encoder}."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model name, local path or hub id for the text encoder.")
    ] = None,
    dense: Annotated[
        bool | None, typer.Option(help="Compute text vectors (off: sparse only). Default: on.")
    ] = None,
    image_encoder: Annotated[
        str | None,
        typer.Option(
            help="Image-text encoder: auto (the store's, or lit when images are present), "
            f"lit, conse, clip, siglip, or none. Default: {DEFAULT.image_encoder}."
        ),
    ] = None,
    image_model: Annotated[
        str | None, typer.Option(help="Hub id or path for a clip/siglip image encoder.")
    ] = None,
    ocr: Annotated[
        str | None,
        typer.Option(
            help=f"OCR images and scanned pages: auto, always, never. Default: {DEFAULT.ocr}."
        ),
    ] = None,
    pdf_pages: Annotated[
        bool | None, typer.Option(help="Also index PDF pages as images. Default: off.")
    ] = None,
    asr: Annotated[
        str | None,
        typer.Option(
            help="Whisper for speech in audio and video: tiny.en, base (multilingual, "
            "language detected), a path, a hub id, or none (video frames only). "
            f"Default: {DEFAULT.asr}."
        ),
    ] = None,
    audio_encoder: Annotated[
        str | None,
        typer.Option(help="Audio-text encoder for sounds: clap (with --audio-model), or none."),
    ] = None,
    audio_model: Annotated[
        str | None, typer.Option(help="Hub id or path of the CLAP model.")
    ] = None,
    page_encoder: Annotated[
        str | None,
        typer.Option(help="Late-interaction page encoder (colpali) for PDF pages, or none."),
    ] = None,
    page_model: Annotated[
        str | None, typer.Option(help="Hub id or path of the page encoder.")
    ] = None,
    chunk_tokens: Annotated[
        int | None,
        typer.Option(
            help="Chunk size in tokens (0: one chunk per section). "
            f"Default: {DEFAULT.chunk_tokens}."
        ),
    ] = None,
    overlap: Annotated[
        int | None, typer.Option(help=f"Token overlap between chunks. Default: {DEFAULT.overlap}.")
    ] = None,
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
        int | None,
        typer.Option(
            min=1,
            help="Embedding workers: threads sharing each batch (one core each), or Ray "
            f"workers with --engine ray (each loads the models once). Default: {DEFAULT.workers}.",
        ),
    ] = None,
    wait: WaitOpt = 0.0,
) -> None:
    """Index files and folders: text, Markdown, HTML, PDF, JSONL, images, audio, video.

    Unchanged files are skipped; changed ones are updated. The store remembers the
    settings it was indexed with: options left out keep them.
    """
    from mmrag.indexing.build import build_indexer, has_visual_files
    from mmrag.indexing.config import config_of

    if engine not in ("in-process", "ray"):
        raise MMRagError(f"--engine takes in-process or ray, not {engine!r}")
    given = _given(
        encoder=encoder,
        model=model,
        dense=dense,
        image_encoder=image_encoder,
        image_model=image_model,
        ocr=ocr,
        pdf_pages=pdf_pages,
        asr=asr,
        audio_encoder=audio_encoder,
        audio_model=audio_model,
        page_encoder=page_encoder,
        page_model=page_model,
        chunk_tokens=chunk_tokens,
        overlap=overlap,
        workers=workers,
    )
    DEFAULT.replace(**_changes(DEFAULT, given))  # a bad value fails before a store is made
    with open_store_at(store, create=True, wait=wait) as st:
        remembered = config_of(st)
        config = remembered.replace(**_changes(remembered, given))
        if engine == "ray":
            from mmrag.indexing.ray_engine import RayOptions, index_paths_with_ray

            report = index_paths_with_ray(
                st, paths, config, options=RayOptions(address=address), prune=prune
            )
        else:
            indexer = build_indexer(
                st, config, visual=has_visual_files(paths), progress=interactive()
            )
            report = indexer.index_paths(paths, prune=prune)
        # recorded once the engine has run, so settings it refused are never remembered
        st.set_index_config(config.to_dict())
    for e in report.errors:
        err.print(f"[yellow]skipped[/yellow] {e.path}: {e.reason}")
    console.print(f"[green]indexed[/green] {report.summary()} -> {store_location(store)}")
    if report.errors and not (report.added or report.updated or report.unchanged):
        raise typer.Exit(1)


def _given(**options: Any) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


def _off(value: str) -> str | None:
    return None if value == "none" else value


def _changes(remembered: IndexConfig, given: dict[str, Any]) -> dict[str, Any]:
    """The config settings the given options change (option names are the CLI's)."""
    out: dict[str, Any] = {}
    if given.get("dense") is False:
        out["text_encoder"] = None
    elif "encoder" in given:
        out["text_encoder"] = given["encoder"]
    elif given.get("dense") and remembered.text_encoder is None:
        out["text_encoder"] = DEFAULT.text_encoder  # vectors again, after --no-dense
    if "model" in given:
        out["text_model"] = given["model"]
    for name in ("image_encoder", "asr", "audio_encoder", "page_encoder"):
        if name in given:
            out[name] = _off(given[name])
    for name in (
        "image_model",
        "ocr",
        "pdf_pages",
        "audio_model",
        "page_model",
        "chunk_tokens",
        "overlap",
        "workers",
    ):
        if name in given:
            out[name] = given[name]
    return out
