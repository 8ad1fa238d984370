"""A decompression-bomb guard for PDFs, checked before pdfium sees the file.

pdfium inflates a page's content streams whole and has no size limit: a 1 MB PDF
holding one FlateDecode stream of 1 GB of spaces took 2.1 GB of memory to read its
(empty) text. So every zlib stream in the file is inflated here first, in bounded
steps, counting the bytes it would decode to, and a file over the limits is refused.
Only FlateDecode is counted (the filter nearly every PDF writer uses); an encrypted
stream does not inflate and is not counted (pdfium refuses those files anyway).
"""

from __future__ import annotations

import re
import zlib

from mmrag.errors import IngestError

# One stream: far above any real page's content (tens of KB) or an image stream (a
# 600-dpi A4 RGB scan is 105 MB decoded); a file: every stream together.
MAX_STREAM_BYTES = 256 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
_STREAM = re.compile(rb"(?<!end)stream(?:\r\n|\n|\r)")
_STEP = 1 << 16  # compressed bytes fed per step
_OUT_STEP = 1 << 22  # decoded bytes produced per step at most


def _inflated_size(data: memoryview, start: int, limit: int) -> int:
    """Bytes the zlib stream at `start` decodes to, counting stops just past `limit`;
    0 when no zlib stream starts there."""
    inflater = zlib.decompressobj()
    size, pos = 0, start
    pending = b""
    try:
        while size <= limit and not inflater.eof:
            if not pending:
                if pos >= len(data):
                    break
                pending = bytes(data[pos : pos + _STEP])
                pos += _STEP
            size += len(inflater.decompress(pending, _OUT_STEP))
            pending = inflater.unconsumed_tail
    except zlib.error:
        pass  # not zlib (another filter, encrypted) or damaged: what decoded so far counts
    return size


def check_pdf_streams(
    path: str,
    data: bytes,
    max_stream: int = MAX_STREAM_BYTES,
    max_total: int = MAX_TOTAL_BYTES,
) -> None:
    """Raise IngestError when a stream, or all streams together, would decode too large."""
    view = memoryview(data)
    total = 0
    for match in _STREAM.finditer(data):
        size = _inflated_size(view, match.end(), min(max_stream, max_total - total))
        if size > max_stream:
            raise IngestError(
                path,
                f"refused as a decompression bomb: a stream at byte {match.end()} decodes "
                f"to over {max_stream >> 20} MB",
            )
        total += size
        if total > max_total:
            raise IngestError(
                path,
                f"refused as a decompression bomb: its streams decode to over {max_total >> 20} MB",
            )
