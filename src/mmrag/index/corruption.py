"""Telling a damaged SQLite file from other database errors, and saying what to do.

SQLite reports damage as SQLITE_CORRUPT ("database disk image is malformed") or
SQLITE_NOTADB ("file is not a database"), from whichever statement first reads a bad
page, so any call can meet it. Those become a StoreError naming `mmrag doctor`; other
errors (a busy or read-only file, a bug in a statement) are not damage and pass through.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mmrag.errors import StoreError

_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
# Before Python 3.11 exceptions carried no error code; these are SQLite's own messages.
_DAMAGE_WORDS = ("malformed", "not a database", "corrupt")


def is_damage(exc: BaseException) -> bool:
    """Whether a sqlite3 error says the file itself is damaged."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return any(word in str(exc).lower() for word in _DAMAGE_WORDS)


def doctor_hint(store: Path) -> str:
    return f"run `mmrag doctor {store}` to check it, then `--repair` to recover what can be"


def damaged_store(store: Path, db_file: Path, exc: BaseException) -> StoreError:
    return StoreError(f"{db_file} is damaged ({exc}): {doctor_hint(store)}")
