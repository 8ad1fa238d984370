"""`mmrag train align`: the LiT projection head mmrag ships."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.console import interactive
from mmrag.cli.results import cache_root, write_json


def train_align_cmd(
    directory: Annotated[Path, typer.Argument(help="Flickr8k folder with captions_en/zh.csv.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the head (.safetensors).")],
    langs: Annotated[str, typer.Option(help="Caption languages, comma-separated.")] = "en,zh",
    epochs: Annotated[int, typer.Option(min=1)] = 60,
    hidden: Annotated[int, typer.Option(min=8)] = 256,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train the LiT projection head (both towers frozen) on the Flickr8k train half."""
    from mmrag.train.align import train_align

    result = train_align(
        directory,
        out,
        tuple(x.strip() for x in langs.split(",") if x.strip()),
        epochs,
        hidden,
        seed,
        cache=cache_root(),
        show=interactive(),
    )
    write_json(None, result)
