"""Loaders for text formats: plain text, Markdown, HTML, and JSONL / BEIR records.

Text is decoded only when its encoding is known (a byte-order mark, valid UTF-8, or an
HTML charset declaration); anything else is refused with the byte offset of the
problem, never guessed into garbled text. Extracted text keeps the file's characters
as they are, so spans point at the same characters a reader sees in the file.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from html.parser import HTMLParser
from typing import Any

from mmrag.errors import IngestError
from mmrag.ingest.files import Loaded, RawFile, Section, SourceFile

_BOM_CODECS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_TITLE_MAX_CHARS = 100


def _decode_error(raw: RawFile, encoding: str, exc: UnicodeDecodeError) -> IngestError:
    bad = exc.object[exc.start : exc.start + 4].hex(" ")
    return raw.error(
        f"not valid {encoding} at byte {exc.start} (bytes {bad}); re-save the file as UTF-8"
    )


def decode_text(raw: RawFile, fallback: str | None = None) -> str:
    """The file's text: by its byte-order mark, else UTF-8, else the declared `fallback`."""
    for bom, encoding in _BOM_CODECS:
        if raw.data.startswith(bom):
            try:
                return raw.data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise _decode_error(raw, encoding, exc) from exc
    try:
        return raw.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if fallback is None:
            raise _decode_error(raw, "UTF-8", exc) from exc
        utf8_error = exc
    try:
        return raw.data.decode(fallback)
    except (UnicodeDecodeError, LookupError) as exc:
        raise _decode_error(raw, "UTF-8", utf8_error) from exc


def _require_text(raw: RawFile, text: str) -> None:
    if not text.strip():
        raise raw.error("no text (only whitespace or markup)")


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= _TITLE_MAX_CHARS else ""
    return ""


# ---- plain text --------------------------------------------------------------------


def load_txt(raw: RawFile) -> Loaded:
    """A plain-text file: one section; the title is its first line when that is short."""
    text = decode_text(raw)
    _require_text(raw, text)
    return Loaded([raw.source(_first_line_title(text), [Section(text)])])


# ---- Markdown ----------------------------------------------------------------------

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def markdown_headings(text: str) -> list[tuple[int, int, str]]:
    """(line offset, level, text) of each ATX heading outside fenced code blocks."""
    headings = []
    fence: str | None = None
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        fence_match = _FENCE.match(stripped)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
        elif fence is None:
            match = _HEADING.match(stripped)
            if match:
                headings.append((offset, len(match.group(1)), match.group(2).strip()))
        offset += len(line)
    return headings


def load_markdown(raw: RawFile) -> Loaded:
    """Markdown kept as written, split into one section per top-level heading.

    The title is the first "# " heading (else the file name). Text before the first
    splitting heading is a section of its own. Sections are slices of the file's text,
    so chunk spans are offsets into the whole file.
    """
    text = decode_text(raw)
    _require_text(raw, text)
    headings = markdown_headings(text)
    title = next((h for _, level, h in headings if level == 1), "")
    # Split at the shallowest heading level, except that a lone "# Title" over "## "
    # parts splits at the parts (the title stays with the introduction).
    levels = [level for _, level, _ in headings]
    parts = [h for h in headings if h[1] > 1] if levels.count(1) == 1 else headings
    top = min((level for _, level, _ in parts), default=0)
    cuts = [(offset, heading) for offset, level, heading in parts if level == top]
    first_cut = cuts[0][0] if cuts else len(text)
    if first_cut > 0:  # the introduction, named after the title heading when it holds it
        intro = next((h for o, lv, h in headings if lv == 1 and o < first_cut), "")
        cuts = [(0, intro), *cuts]
    bounds = cuts
    sections = []
    for n, (start, heading) in enumerate(bounds):
        end = bounds[n + 1][0] if n + 1 < len(bounds) else len(text)
        part = text[start:end]
        if part.strip():
            metadata = {"section": heading} if heading else {}
            sections.append(Section(part, None, metadata, offset=start))
    return Loaded([raw.source(title, sections)])


# ---- HTML --------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd details dialog div dl dt fieldset figcaption "
    "figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p pre section "
    "summary table tbody thead tfoot tr ul caption".split()
)
_CELL_TAGS = frozenset({"td", "th"})
# Content a browser does not show as text. (Not <head>: its end tag is optional, and
# the only text in it, <title>, is handled on its own.)
_INVISIBLE_TAGS = frozenset({"script", "style", "noscript", "template", "svg"})
_LINE_TAGS = frozenset({"br", "li", "tr", "dt", "dd"})  # a line break, not a paragraph
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


class _VisibleText(HTMLParser):
    """Collects the text a browser would show, with line breaks at block elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self.h1_parts: list[str] = []
        self._invisible: list[str] = []  # open invisible elements, innermost last
        self._in_title = False
        self._in_h1 = False
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            # Only the document's first <title>; an SVG's <title> is not the page's.
            self._in_title = not self._invisible and not self.title_parts
        elif tag in _INVISIBLE_TAGS:
            self._invisible.append(tag)
        elif self._invisible:
            return
        elif tag in _BLOCK_TAGS:
            # A line-level element starts on a new line (its end tag is often omitted).
            self.parts.append("\n" if tag in _LINE_TAGS else "\n\n")
        elif tag in _CELL_TAGS:
            self.parts.append("\t")
        if tag == "pre":
            self._pre += 1
        if tag == "h1":
            self._in_h1 = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS and not self._invisible:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif self._invisible:
            # Close up to the matching invisible element; stray end tags inside are ignored.
            if tag in self._invisible:
                while self._invisible and self._invisible.pop() != tag:
                    pass
        elif tag in _BLOCK_TAGS and tag not in _LINE_TAGS:
            self.parts.append("\n\n")
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
            return
        if self._invisible:
            return
        if self._in_h1:
            self.h1_parts.append(data)
        # Outside <pre>, a run of whitespace shows as one space, as in a browser.
        self.parts.append(data if self._pre else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        joined = "".join(self.parts)
        lines = [line.strip(" \t") for line in joined.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def load_html(raw: RawFile) -> Loaded:
    """The visible text of an HTML page (no script or style), title from <title> or <h1>."""
    declared = _META_CHARSET.search(raw.data[:4096])
    fallback = declared.group(1).decode("ascii") if declared else None
    if fallback is not None:
        try:
            codecs.lookup(fallback)
        except LookupError:
            fallback = None
    text = decode_text(raw, fallback)
    parser = _VisibleText()
    parser.feed(text)
    parser.close()
    body = parser.text()
    _require_text(raw, body)
    title = " ".join("".join(parser.title_parts).split()) or " ".join(
        "".join(parser.h1_parts).split()
    )
    return Loaded([raw.source(title, [Section(body)])])


# ---- JSONL records and BEIR corpora ------------------------------------------------

_ID_FIELDS = ("id", "_id")
_TEXT_FIELDS = ("text", "contents")  # "contents" is Pyserini's JSONL field
_MAX_REPORTED_LINES = 50


def record_text(title: str, text: str) -> str:
    """The indexed text of a record: its title, a blank line, then its text.

    BEIR's reference runs index title and body together; the blank line keeps the
    title a paragraph of its own for chunking.
    """
    if title and not text.startswith(title):
        return f"{title}\n\n{text}" if text else title
    return text


def _record(raw: RawFile, line: bytes, number: int) -> tuple[str, SourceFile]:
    """Parse one JSONL line; ValueError's message says what is wrong with it."""
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 at byte {exc.start} of the line") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError:
        # json recurses per nesting level: a line of 100,000 "[" would end the whole file
        raise ValueError("nested too deeply to parse") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    rid = next((record[f] for f in _ID_FIELDS if f in record), None)
    if isinstance(rid, bool) or not isinstance(rid, str | int) or str(rid) == "":
        raise ValueError("no 'id' or '_id' (a non-empty string or integer)")
    body = next((record[f] for f in _TEXT_FIELDS if f in record), None)
    if not isinstance(body, str):
        raise ValueError("no 'text' string")
    title = record.get("title") or ""
    if not isinstance(title, str):
        raise ValueError("'title' is not a string")
    text = record_text(title.strip(), body)
    if not text.strip():
        raise ValueError("empty 'text' and no 'title'")
    metadata: dict[str, Any] = {}
    nested = record.get("metadata")
    if isinstance(nested, dict):  # BEIR records carry a "metadata" object; flatten it
        metadata.update(nested)
    skip = {*_ID_FIELDS, *_TEXT_FIELDS, "title", "metadata"}
    metadata.update({k: v for k, v in record.items() if k not in skip})
    metadata.update({"suffix": raw.suffix, "line": number})
    source = SourceFile(
        source_id=str(rid),
        path=raw.path,
        content_hash=hashlib.sha256(line).hexdigest(),
        mtime=raw.mtime,
        title=title.strip() or str(rid),
        sections=[Section(text)],
        metadata=metadata,
    )
    return str(rid), source


def load_jsonl(raw: RawFile) -> Loaded:
    """One document per line: `id` or `_id`, `text`, optional `title`, other fields as metadata.

    Bad lines are skipped and reported with their line number; a file with no good
    line at all is an error. A BEIR corpus.jsonl is the same format. A record's
    content hash is that of its line, so re-indexing updates only changed records.
    """
    data = raw.data
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise raw.error("JSONL must be UTF-8 (this file is UTF-16)")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    sources: list[SourceFile] = []
    bad: list[IngestError] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        try:
            rid, source = _record(raw, line, number)
            if rid in first_line:
                raise ValueError(f"duplicate id {rid!r} (first on line {first_line[rid]})")
        except ValueError as exc:
            bad.append(raw.error(f"line {number}: {exc}"))
            continue
        first_line[rid] = number
        sources.append(source)
    if not sources:
        reason = bad[0].reason if bad else "no records"
        raise raw.error(f"no valid records ({len(bad)} bad lines; first: {reason})")
    if len(bad) > _MAX_REPORTED_LINES:
        more = len(bad) - _MAX_REPORTED_LINES
        bad = bad[:_MAX_REPORTED_LINES] + [raw.error(f"... and {more} more bad lines")]
    return Loaded(sources, bad)
