"""What is fuzzed, and the contract each target must keep.

A target takes a file's bytes, writes them where the indexer would find them and loads
them through `mmrag.ingest.load` with the loader the indexer would use. The contract: it
returns documents, or raises `IngestError` with a reason; any other exception is a bug
(the indexer would report it as "unexpected", with no reason a user can act on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmrag.errors import IngestError
from mmrag.ingest.files import (
    IMAGE_KINDS,
    LOADERS,
    MEDIA_KINDS,
    ContentKind,
    Loaded,
    LoaderTable,
    load,
    loader_entries,
)
from tests.fuzz.seeds import SUFFIXES, beir_queries

# Loader names, in the order of the loader table; the ones that run a model are marked.
TEXT_LOADERS = ("text", "markdown", "html", "jsonl", "beir")
FILE_LOADERS = ("pdf", "pdf_pages", "image", "video")
MODEL_LOADERS = ("audio",)  # Whisper runs on whatever decodes


@dataclass(frozen=True)
class Target:
    name: str
    seeds_of: str  # the seed set it starts from (a key of seeds.SUFFIXES)
    table: LoaderTable
    beir: bool = False  # written as a BEIR folder (corpus.jsonl beside queries.jsonl)


def _tables() -> dict[str, LoaderTable]:
    from mmrag.ingest.audio_loader import make_audio_loader
    from mmrag.ingest.image_loader import make_image_loader
    from mmrag.ingest.pdf_pages import make_pdf_pages_loader
    from mmrag.ingest.video_loader import make_video_loader

    pages = loader_entries([".pdf"], make_pdf_pages_loader(ocr=False), [ContentKind.PDF])
    # OCR off: a model reading a mutated picture tests the model, not the parser.
    images = loader_entries([".png"], make_image_loader(ocr="never"), IMAGE_KINDS)
    video = loader_entries([".mp4"], make_video_loader(transcriber=None), MEDIA_KINDS)
    audio = loader_entries([".wav"], make_audio_loader("tiny.en", tags=False), MEDIA_KINDS)
    return {
        "pages": {**LOADERS, **pages},
        "image": {**LOADERS, **images},
        "video": {**LOADERS, **video},
        "audio": {**LOADERS, **audio},
    }


def targets() -> dict[str, Target]:
    tables = _tables()
    out = {name: Target(name, name, LOADERS) for name in TEXT_LOADERS}
    out["beir"] = Target("beir", "beir", LOADERS, beir=True)
    out["pdf"] = Target("pdf", "pdf", LOADERS)
    out["pdf_pages"] = Target("pdf_pages", "pdf", tables["pages"])
    out["image"] = Target("image", "image", tables["image"])
    out["video"] = Target("video", "video", tables["video"])
    out["audio"] = Target("audio", "audio", tables["audio"])
    return out


def write_input(target: Target, data: bytes, folder: Path, data_dir: Path) -> Path:
    """Where the indexer would read `data` from: a file, or a BEIR folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if target.beir:
        (folder / "queries.jsonl").write_bytes(beir_queries(data_dir))
        (folder / "corpus.jsonl").write_bytes(data)
        return folder
    path = folder / f"input{SUFFIXES[target.seeds_of]}"
    path.write_bytes(data)
    return path


def run(target: Target, path: Path) -> Loaded | IngestError:
    """Load the input; an IngestError is returned (the contract allows it), others raise."""
    try:
        return load(path, target.table)
    except IngestError as exc:
        if not exc.reason.strip():
            raise AssertionError("an IngestError without a reason") from exc
        return exc


def check_loaded(loaded: Loaded | IngestError) -> None:
    """What a successful load must hold: at least one document, each with an id."""
    if isinstance(loaded, IngestError):
        return
    assert loaded.sources, "a load that succeeded returned no source"
    for source in loaded.sources:
        assert source.source_id
        assert source.sections or source.media, f"{source.source_id} holds nothing"


Runner = Callable[[bytes], Loaded | IngestError]
