"""Where evaluation and training commands keep their caches and write their JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.cli.console import console

JsonOut = Annotated[
    Path | None, typer.Option("--json", help="Write the metrics as JSON to this file.")
]


def cache_root() -> Path:
    return Path(os.environ.get("MMRAG_CACHE", ".mmrag-cache"))


def eval_cache_dir() -> Path:
    """Indexed evaluation corpora, reused across runs and commands."""
    return cache_root() / "eval-stores"


def write_json_file(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")


def write_json(out: Path | None, result: dict[str, Any]) -> None:
    """Save the result to `out` if given, and always show it."""
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if out:
        write_json_file(out, text)
    console.print_json(text)
