"""Find files, pick their loader by suffix, check that the content matches the suffix.

A loader turns the bytes of one file into one `SourceFile` (a document) or many (a
JSONL file or BEIR corpus holds one record per line). Loaders are named per suffix in a
table, explicitly, as callables, lazy "module:function" paths or `ConfiguredLoader`s so a
heavy parser (pypdfium2, Whisper) is imported only when a file needs it.

`LOADERS` is the default table. An indexer with other settings (OCR, PDF pages, a Whisper
model) holds a table of its own, a copy with some entries replaced, and passes it to
`iter_files`, `load` and `scan`; nothing in mmrag changes `LOADERS` itself.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mmrag.errors import IngestError
from mmrag.registry import import_object
from mmrag.types import Document


@dataclass(frozen=True, slots=True)
class Section:
    """A run of extracted text: a page of a PDF, a top-level part of a Markdown file.

    Chunk spans are offsets into the section's coordinate space: the page's text when
    `page` is set, else the source's whole extracted text, where this section starts
    at `offset`. So `text[a:b]` is at `offset + a` in the whole text.
    """

    text: str
    page: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    offset: int = 0


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One loaded document (a file, or one record of a JSONL/BEIR corpus)."""

    source_id: str  # the file's resolved absolute path, or the record id
    path: Path
    content_hash: str  # sha256 of the raw bytes (of the file, or of the record's line)
    mtime: float
    title: str
    sections: list[Section]
    metadata: dict[str, Any] = field(default_factory=dict)
    # Ready-made non-text documents (an image, a video shot, a page image, a transcript
    # segment with its time span): indexed as they are, after the text chunks.
    media: list[Document] = field(default_factory=list)

    @property
    def text(self) -> str:
        """All sections' text, separated by blank lines (for display and tests)."""
        return "\n\n".join(s.text for s in self.sections)


class ContentKind(StrEnum):
    """What a file's first bytes say it is; values read well in error messages."""

    EMPTY = "an empty file"
    TEXT = "text"
    BINARY = "binary data (NUL bytes)"
    PDF = "a PDF"
    PNG = "a PNG image"
    JPEG = "a JPEG image"
    GIF = "a GIF image"
    WEBP = "a WebP image"
    BMP = "a BMP image"
    TIFF = "a TIFF image"
    WAV = "a WAV audio file"
    FLAC = "a FLAC audio file"
    OGG = "an Ogg media file"
    MP3 = "an MP3 audio file"
    MP4 = "an MP4/MOV video"
    MATROSKA = "a Matroska/WebM media file"
    ZIP = "a ZIP archive (or docx/xlsx/epub)"
    GZIP = "a gzip archive"
    ELF = "an executable"
    SQLITE = "an SQLite database"


_SIGNATURES: tuple[tuple[bytes, ContentKind], ...] = (
    (b"%PDF-", ContentKind.PDF),
    (b"\x89PNG\r\n\x1a\n", ContentKind.PNG),
    (b"\xff\xd8\xff", ContentKind.JPEG),
    (b"GIF87a", ContentKind.GIF),
    (b"GIF89a", ContentKind.GIF),
    (b"II*\x00", ContentKind.TIFF),  # little-endian TIFF
    (b"MM\x00*", ContentKind.TIFF),  # big-endian TIFF
    # Magic numbers that are plain letters also need the binary byte that follows them,
    # so a text file that happens to start with "OggS" or "ID3" is not misjudged.
    (b"fLaC\x00", ContentKind.FLAC),  # the first metadata block is STREAMINFO (type 0)
    (b"fLaC\x80", ContentKind.FLAC),
    (b"OggS\x00", ContentKind.OGG),
    (b"ID3\x02\x00", ContentKind.MP3),
    (b"ID3\x03\x00", ContentKind.MP3),
    (b"ID3\x04\x00", ContentKind.MP3),
    (b"\x1a\x45\xdf\xa3", ContentKind.MATROSKA),  # EBML header of .mkv / .webm
    (b"PK\x03\x04", ContentKind.ZIP),
    (b"PK\x05\x06", ContentKind.ZIP),
    (b"\x1f\x8b", ContentKind.GZIP),
    (b"\x7fELF", ContentKind.ELF),
    (b"SQLite format 3\x00", ContentKind.SQLITE),
)
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip")
# Byte-order marks: text in UTF-16/32 is full of NUL bytes but is still text.
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def sniff(data: bytes) -> ContentKind:
    """Classify content by its magic bytes, so a file whose suffix lies is caught."""
    if not data:
        return ContentKind.EMPTY
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:2] == b"BM" and len(data) >= 14 and data[6:10] == b"\x00\x00\x00\x00":
        return ContentKind.BMP  # "BM", file size, then four reserved zero bytes
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ContentKind.WEBP
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return ContentKind.WAV
    if data[:2] == b"\x00\x00" and data[4:8] == b"ftyp":  # ISO media: a size, then "ftyp"
        return ContentKind.MP4
    if data[:2] == b"\x00\x00" and data[4:8] in _QUICKTIME_ATOMS:  # old QuickTime: no ftyp
        return ContentKind.MP4
    if data.startswith(BOMS):
        return ContentKind.TEXT
    # An MPEG audio frame header (sync bits, then a layer) with no ID3 tag; after the BOM
    # check, because the UTF-16 mark FF FE has the same bit pattern.
    if len(data) >= 4 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06:
        return ContentKind.MP3
    if b"\x00" in data[:8192]:
        return ContentKind.BINARY
    return ContentKind.TEXT


@dataclass(frozen=True, slots=True)
class RawFile:
    """A file's bytes and identity, as handed to a loader."""

    path: Path  # resolved, absolute
    data: bytes
    mtime: float

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower()

    def content_hash(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def error(self, reason: str) -> IngestError:
        return IngestError(str(self.path), reason)

    def source(
        self, title: str, sections: list[Section], metadata: dict[str, Any] | None = None
    ) -> SourceFile:
        """The SourceFile for a one-document file."""
        return SourceFile(
            source_id=str(self.path),
            path=self.path,
            content_hash=self.content_hash(),
            mtime=self.mtime,
            title=title or self.path.stem,
            sections=sections,
            metadata={"suffix": self.suffix, **(metadata or {})},
        )


@dataclass(slots=True)
class Loaded:
    """What a loader got from one file, and what it skipped (e.g. bad JSONL lines)."""

    sources: list[SourceFile]
    skipped: list[IngestError] = field(default_factory=list)


Loader = Callable[[RawFile], Loaded]


@dataclass(frozen=True, slots=True)
class LoaderEntry:
    target: Loader | str  # a callable or a lazy "module:function" path
    kinds: frozenset[ContentKind]  # what the content must sniff as


# suffix (".png") -> its loader entry
LoaderTable = Mapping[str, LoaderEntry]


class ConfiguredLoader:
    """A loader built by a factory with settings ("module:make_loader", ocr="never") the
    first time a file needs it, so the factory's module is imported only then. It pickles
    as the factory's name and settings, so a worker process builds its own."""

    def __init__(self, factory: str, **settings: Any) -> None:
        self.factory = factory
        self.settings = settings
        self._loader: Loader | None = None

    def __call__(self, raw: RawFile) -> Loaded:
        if self._loader is None:
            self._loader = import_object(self.factory)(**self.settings)
        return self._loader(raw)

    def __getstate__(self) -> dict[str, Any]:
        return {"factory": self.factory, "settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["factory"], **state["settings"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfiguredLoader) and (self.factory, self.settings) == (
            other.factory,
            other.settings,
        )

    def __hash__(self) -> int:
        return hash(self.factory)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"ConfiguredLoader({self.factory!r}, {settings})"


_TEXT_KINDS = frozenset({ContentKind.TEXT})
LOADERS: dict[str, LoaderEntry] = {
    ".txt": LoaderEntry("mmrag.ingest.text_loaders:load_txt", _TEXT_KINDS),
    ".text": LoaderEntry("mmrag.ingest.text_loaders:load_txt", _TEXT_KINDS),
    ".md": LoaderEntry("mmrag.ingest.text_loaders:load_markdown", _TEXT_KINDS),
    ".markdown": LoaderEntry("mmrag.ingest.text_loaders:load_markdown", _TEXT_KINDS),
    ".html": LoaderEntry("mmrag.ingest.text_loaders:load_html", _TEXT_KINDS),
    ".htm": LoaderEntry("mmrag.ingest.text_loaders:load_html", _TEXT_KINDS),
    ".jsonl": LoaderEntry("mmrag.ingest.text_loaders:load_jsonl", _TEXT_KINDS),
    ".pdf": LoaderEntry("mmrag.ingest.pdf_loader:load_pdf", frozenset({ContentKind.PDF})),
}
# Images: any image content is accepted under any image suffix (Pillow reads by content).
IMAGE_KINDS = frozenset(
    {
        ContentKind.JPEG,
        ContentKind.PNG,
        ContentKind.GIF,
        ContentKind.WEBP,
        ContentKind.BMP,
        ContentKind.TIFF,
    }
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
for _suffix in IMAGE_SUFFIXES:
    LOADERS[_suffix] = LoaderEntry("mmrag.ingest.image_loader:load_image", IMAGE_KINDS)
# Audio and video: PyAV reads any container by content, so any media kind is accepted
# under any media suffix (an audio-only .mp4 is indexed for its sound).
MEDIA_KINDS = frozenset(
    {
        ContentKind.WAV,
        ContentKind.FLAC,
        ContentKind.OGG,
        ContentKind.MP3,
        ContentKind.MP4,
        ContentKind.MATROSKA,
    }
)
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".m4v")
for _suffix in AUDIO_SUFFIXES:
    LOADERS[_suffix] = LoaderEntry("mmrag.ingest.audio_loader:load_audio", MEDIA_KINDS)
for _suffix in VIDEO_SUFFIXES:
    LOADERS[_suffix] = LoaderEntry("mmrag.ingest.video_loader:load_video", MEDIA_KINDS)
# A folder holding this file (and BEIR's queries or qrels) is a BEIR corpus: it is
# loaded as one unit, and its other files (queries, qrels) are not documents.
BEIR_CORPUS = "corpus.jsonl"
# A folder's file of glob patterns for names not to index (e.g. its README.md).
IGNORE_FILE = ".mmragignore"


def loader_entries(
    suffixes: Iterable[str],
    loader: Loader | str,
    kinds: Iterable[ContentKind] = (ContentKind.TEXT,),
) -> dict[str, LoaderEntry]:
    """Table entries naming `loader` for some suffixes (".png"), for content of the given
    kinds: `{**LOADERS, **loader_entries(...)}` is a table with that format added."""
    entry = LoaderEntry(loader, frozenset(kinds))
    out: dict[str, LoaderEntry] = {}
    for suffix in suffixes:
        suffix = suffix.lower()
        out[suffix if suffix.startswith(".") else f".{suffix}"] = entry
    return out


def register_loader(
    suffixes: Iterable[str],
    loader: Loader | str,
    kinds: Iterable[ContentKind] = (ContentKind.TEXT,),
) -> None:
    """Add or replace a format in the default table, for this process: a user's own
    extension point (indexers copy the default table when they are built)."""
    LOADERS.update(loader_entries(suffixes, loader, kinds))


def supported_suffixes(loaders: LoaderTable | None = None) -> list[str]:
    return sorted(LOADERS if loaders is None else loaders)


def _hidden(name: str) -> bool:
    return name.startswith(".")


def iter_files(
    paths: Sequence[Path], recursive: bool = True, loaders: LoaderTable | None = None
) -> Iterator[Path]:
    """Files to load under `paths`, each once, in sorted order per given path.

    A file named explicitly is yielded whatever its suffix (so an unsupported one is
    reported, not silently dropped). Inside folders only suffixes with a loader in
    `loaders` (default: `LOADERS`) are;
    hidden files and folders, and names matching a glob in a `.mmragignore` file of
    the folder or a parent, are skipped; a BEIR corpus folder yields only its
    corpus.jsonl.
    """
    known = LOADERS if loaders is None else loaders
    seen: set[Path] = set()
    for root in paths:
        root = Path(root)
        if root.is_dir():
            found = iter(sorted(_walk(root, recursive, known), key=lambda p: p.parts))
        else:
            found = iter([root])
        for path in found:
            if path not in seen:
                seen.add(path)
                yield path


def _ignore_patterns(folder: Path) -> list[str]:
    """Glob patterns from the folder's .mmragignore, one per line ('#' starts a comment)."""
    try:
        lines = (folder / IGNORE_FILE).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return []
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _is_beir(files: list[str], dirs: list[str]) -> bool:
    """BEIR's layout: corpus.jsonl beside queries.jsonl or a qrels/ folder."""
    return BEIR_CORPUS in files and ("queries.jsonl" in files or "qrels" in dirs)


def _walk(root: Path, recursive: bool, loaders: LoaderTable) -> Iterator[Path]:
    ignored: dict[Path, list[str]] = {}  # folder -> its patterns and its parents'
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        inherited = ignored.get(here.parent, []) if here != root else []
        patterns = ignored[here] = inherited + _ignore_patterns(here)
        if _is_beir(files, dirs):
            dirs.clear()
            yield here / BEIR_CORPUS
            continue

        def skip(name: str, patterns: list[str] = patterns) -> bool:
            return _hidden(name) or any(fnmatch.fnmatch(name, p) for p in patterns)

        dirs[:] = sorted(d for d in dirs if not skip(d)) if recursive else []
        for name in sorted(files):
            if not skip(name) and Path(name).suffix.lower() in loaders:
                yield here / name


def read_raw(path: Path) -> RawFile:
    """The bytes of a file; OSError becomes IngestError with the system's reason."""
    try:
        path = Path(path).expanduser().resolve()
    except RuntimeError as exc:  # Python < 3.13 reports a symlink loop so, not as OSError
        raise IngestError(str(path), "a symlink loop (the link leads back to itself)") from exc
    try:
        if path.is_dir():
            if (path / BEIR_CORPUS).is_file():
                path = path / BEIR_CORPUS
            else:
                raise IngestError(str(path), f"a folder (not a BEIR corpus: no {BEIR_CORPUS})")
        data = path.read_bytes()
        mtime = path.stat().st_mtime
    except FileNotFoundError as exc:
        raise IngestError(str(path), "no such file or directory") from exc
    except OSError as exc:
        raise IngestError(str(path), exc.strerror or str(exc)) from exc
    return RawFile(path, data, mtime)


def _entry(raw: RawFile, loaders: LoaderTable) -> LoaderEntry:
    entry = loaders.get(raw.suffix)
    if entry is None:
        shown = raw.suffix or "(no suffix)"
        supported = ", ".join(supported_suffixes(loaders))
        raise raw.error(f"unsupported file type {shown}; supported: {supported}")
    return entry


def check_content(raw: RawFile, kinds: frozenset[ContentKind]) -> None:
    """Refuse content that is not what the suffix promises, with a reason a user can act on."""
    kind = sniff(raw.data)
    if kind is ContentKind.EMPTY:
        raise raw.error("empty file")
    if kind in kinds:
        return
    if kind is ContentKind.BINARY and ContentKind.TEXT in kinds:
        raise raw.error(f"binary data (NUL bytes) in a {raw.suffix} file")
    if kind in (ContentKind.TEXT, ContentKind.BINARY):
        expected = " or ".join(sorted(k.value for k in kinds))
        looks = "plain text" if kind is ContentKind.TEXT else "unknown binary data"
        raise raw.error(f"named {raw.suffix} but is not {expected} (it looks like {looks})")
    raise raw.error(f"looks like {kind.value} but is named {raw.suffix}")


def load(path: Path, loaders: LoaderTable | None = None) -> Loaded:
    """Every document in one file (or BEIR folder), and the parts that were skipped,
    read by its suffix's loader in `loaders` (default: `LOADERS`)."""
    raw = read_raw(path)
    entry = _entry(raw, LOADERS if loaders is None else loaders)
    check_content(raw, entry.kinds)
    loader = import_object(entry.target) if isinstance(entry.target, str) else entry.target
    return loader(raw)


def load_source(path: Path, loaders: LoaderTable | None = None) -> SourceFile:
    """The one document in a file; a JSONL or BEIR file, which holds many, needs `load`."""
    loaded = load(path, loaders)
    if len(loaded.sources) != 1:
        raise IngestError(
            str(path), f"holds {len(loaded.sources)} records; load it with mmrag.ingest.load()"
        )
    return loaded.sources[0]


def scan(
    paths: Sequence[Path], recursive: bool = True, loaders: LoaderTable | None = None
) -> tuple[list[SourceFile], list[IngestError]]:
    """Load every file under `paths`; a bad file is reported and the scan goes on."""
    sources: list[SourceFile] = []
    errors: list[IngestError] = []
    existing = []
    for p in paths:
        if Path(p).exists():
            existing.append(Path(p))
        else:
            errors.append(IngestError(str(p), "no such file or directory"))
    for path in iter_files(existing, recursive, loaders):
        try:
            loaded = load(path, loaders)
        except IngestError as exc:
            errors.append(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a parser bug on one file must not stop a scan
            errors.append(IngestError(str(path), f"unexpected {type(exc).__name__}: {exc}"))
            continue
        sources.extend(loaded.sources)
        errors.extend(loaded.skipped)
    return sources, errors
