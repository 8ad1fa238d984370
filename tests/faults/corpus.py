"""A small real corpus for crash trials: SciFact abstracts written one per file, each
with a token found in no other file, so BM25 for it must return that file's chunk."""

from __future__ import annotations

import json
from pathlib import Path

MARKER = r"zq[a-z]\d{4}"  # what check_store(marker=...) looks for in analysed tokens


def marker(kind: str, i: int) -> str:
    return f"zq{kind}{i:04d}"


def scifact_records(data_dir: Path, n: int, max_chars: int = 0) -> list[tuple[str, str]]:
    """(title, abstract) of the first `n` SciFact documents, abstracts cut at a word
    boundary near `max_chars` when it is set (encoding is not what trials test)."""
    out: list[tuple[str, str]] = []
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if len(out) == n:
                break
            record = json.loads(line)
            text = record["text"]
            if max_chars and len(text) > max_chars:
                text = text[:max_chars].rsplit(" ", 1)[0]
            out.append((record["title"], text))
    return out


def write_corpus(folder: Path, records: list[tuple[str, str]]) -> list[Path]:
    """One .txt file per record, its marker first; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (title, text) in enumerate(records):
        path = folder / f"doc{i:04d}.txt"
        path.write_text(f"{marker('m', i)} {title}\n\n{text}\n", encoding="utf-8")
        paths.append(path)
    return paths


def change_files(paths: list[Path], every: int = 2) -> list[Path]:
    """Rewrite every `every`th file with a new marker and a new last sentence, as an
    edit would; returns the changed paths."""
    changed = []
    for i, path in enumerate(paths):
        if i % every:
            continue
        body = path.read_text(encoding="utf-8").split(" ", 1)[1]
        path.write_text(f"{marker('v', i)} {body}Revised in a later edition.\n", encoding="utf-8")
        changed.append(path)
    return changed
