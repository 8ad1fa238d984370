"""`mmrag eval audio fsdd|esc50 DIR` and `mmrag eval video DIR`: faces over eval/audio.py
and eval/video.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.friendly import plain_error
from mmrag.cli.results import JsonOut, cache_root, eval_cache_dir, write_json_file
from mmrag.errors import MMRagError


def eval_audio(
    dataset: Annotated[str, typer.Argument(help="fsdd or esc50.")],
    directory: Annotated[Path, typer.Argument(help="The dataset folder.")],
    retriever: Annotated[
        list[str] | None,
        typer.Option(help="bm25, dense, hybrid or likelihood (ESC-50; repeatable)."),
    ] = None,
    asr: Annotated[str, typer.Option(help="Whisper model: tiny.en, base, path, hub id.")] = (
        "tiny.en"
    ),
    limit: Annotated[
        int | None,
        typer.Option(help="FSDD: recordings per digit; ESC-50: clips (a quick subset)."),
    ] = None,
    out: JsonOut = None,
) -> None:
    """FSDD: precision@10 per digit for "seven" / "7" queries. ESC-50: mAP for class
    names and short descriptions (zero-shot through Whisper's sound tags)."""
    from mmrag.eval.audio import eval_esc50, eval_fsdd

    cache = eval_cache_dir()
    try:
        if dataset == "fsdd":
            result = eval_fsdd(directory, cache, tuple(retriever or ["bm25", "hybrid"]), asr, limit)
        elif dataset == "esc50":
            names = tuple(retriever or ["bm25", "dense", "hybrid"])
            result = eval_esc50(directory, cache, names, asr, limit)
        else:
            raise MMRagError(f"unknown audio dataset {dataset!r}; supported: fsdd, esc50")
    except MMRagError as exc:
        raise plain_error(exc) from None
    _show(out, result)


def eval_video_cmd(
    directory: Annotated[Path, typer.Argument(help="The Flickr8k folder (photos, captions).")],
    clips: Annotated[int, typer.Option(min=1, help="Constructed clips (3 photos each).")] = 20,
    retriever: Annotated[
        list[str] | None, typer.Option(help="multimodal, text or visual (repeatable).")
    ] = None,
    asr: Annotated[str, typer.Option(help="Whisper model for the narration.")] = "tiny.en",
    out: JsonOut = None,
) -> None:
    """Constructed clips (Flickr8k photos + espeak-ng narration): caption or narration
    -> clip and time span, R@1 and R@5."""
    from mmrag.eval.video import RETRIEVERS, eval_video

    try:
        result = eval_video(directory, cache_root(), clips, tuple(retriever or RETRIEVERS), asr)
    except MMRagError as exc:
        raise plain_error(exc) from None
    _show(out, result)


def _show(out: Path | None, result: dict) -> None:
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if out:
        write_json_file(out, text)
    typer.echo(text)


def register(eval_app: typer.Typer) -> None:
    """Add the `audio` and `video` commands to the `mmrag eval` group."""
    eval_app.command("audio")(eval_audio)
    eval_app.command("video")(eval_video_cmd)
