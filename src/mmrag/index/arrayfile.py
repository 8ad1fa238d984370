"""Named numpy arrays in one file, laid out raw so that reading is a memory map.

Layout: an 8-byte magic, the header's length (uint64, little endian), a JSON header
(caller's fields plus each array's dtype, shape and offset), then every array's bytes
at an offset aligned to 64. Reading maps the file copy-on-write: nothing is read until
it is touched, pages touched only for reading stay shared with the page cache (and are
dropped from memory under pressure instead of swapped), and an owner that modifies an
array in place gets private copies of just those pages; the file never changes.

npz was the obvious container, but numpy cannot memory-map its members. Writing goes
through a temporary file, fsync and rename, so a reader sees the old file or the new one;
a file cut short is refused by its size. Each array's bytes carry a checksum in the
header (`index/checksum.py`), checked on read: a disk or a copy that garbled them is found
at open instead of answering wrong searches. That reads the whole file once
(bench/derived_checksums.py measures what it adds to opening a store), so the pages come
in at open rather than at first touch; they stay shared with the page cache.
A change inside the header itself either breaks its JSON or moves an array, whose CRC
then fails. Files written before the checksums have none and are read unchecked.
"""

from __future__ import annotations

import json
import mmap
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.index import checksum, faults

MAGIC = b"MMRAGARR"
_ALIGN = 64
_PREFIX = len(MAGIC) + 8


class ArrayFileError(ValueError):
    """The file is not an array file, or is damaged."""


def is_array_file(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def write_arrays(path: Path, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
    """Write `arrays` and `header` (JSON-serialisable) to `path` atomically."""
    path = Path(path)
    arrays = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    layout: dict[str, Any] = {}
    offset = 0
    for name, a in arrays.items():
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} holds Python objects")
        layout[name] = {
            "dtype": a.dtype.str,
            "shape": list(a.shape),
            "offset": offset,
            checksum.KEY: checksum.digest(_bytes(a)),
        }
        offset = _aligned(offset + a.nbytes)
    text = json.dumps({**header, "arrays": layout}).encode("utf-8")
    data_start = _aligned(_PREFIX + len(text))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + len(text).to_bytes(8, "little") + text)
            for name, a in arrays.items():
                f.seek(data_start + layout[name]["offset"])
                f.write(_bytes(a))
            f.truncate(data_start + offset)  # the last array's padding, so sizes check out
            f.flush()
            os.fsync(f.fileno())
        faults.point("sparse.before_replace")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _bytes(a: np.ndarray) -> memoryview | bytes:
    return memoryview(a).cast("B") if a.nbytes else b""


def read_arrays(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays) of a file written by `write_arrays`; the arrays map the file.

    Raises ArrayFileError when the file is not one, is shorter than its header says, or
    an array's bytes do not match their checksum.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(_PREFIX)
        if len(prefix) < _PREFIX or prefix[: len(MAGIC)] != MAGIC:
            raise ArrayFileError("not an mmrag array file")
        n = int.from_bytes(prefix[len(MAGIC) :], "little")
        if _PREFIX + n > size:
            raise ArrayFileError("header runs past the end of the file")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
            layout = header.pop("arrays")
        except (ValueError, KeyError, UnicodeDecodeError) as exc:
            raise ArrayFileError(f"unreadable header: {exc}") from exc
        data_start = _aligned(_PREFIX + n)
        # ACCESS_COPY: in-place changes by the owner stay private to this process.
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    arrays = {}
    try:
        for name, spec in layout.items():
            dtype, shape = np.dtype(spec["dtype"]), tuple(int(s) for s in spec["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            start = data_start + int(spec["offset"])
            if start + count * dtype.itemsize > size:
                raise ArrayFileError(f"array {name!r} runs past the end of the file")
            array = np.frombuffer(mapped, dtype, count, start)
            expected = spec.get(checksum.KEY)
            if expected is not None and checksum.digest(_bytes(array)) != expected:
                raise ArrayFileError(f"array {name!r} does not match its checksum")
            arrays[name] = array.reshape(shape)
    except (KeyError, TypeError) as exc:
        raise ArrayFileError(f"bad array layout: {exc}") from exc
    return header, arrays


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
