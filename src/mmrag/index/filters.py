"""Metadata filters: one small Mongo-like dict language, translated per backend.

    {"lang": "en", "page": {"$gte": 3}, "$or": [{"kind": "pdf"}, {"kind": "md"}]}

Keys name a chunk column (modality, source_id, source) or a metadata field (dotted
paths allowed). Values are bound as parameters, never spliced into the query text.
A filter is user input (a CLI option, a server request), so its size is bounded: nesting
depth, number of conditions, integers SQLite can hold; anything else is a ConfigError.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mmrag.errors import ConfigError

COLUMNS = {"modality", "source_id", "source", "id"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_COMPARE = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
Scalar = str | int | float | bool
# Far past any hand-written filter, well inside SQLite's expression depth (1000) and
# bound-parameter count (32766) and Python's recursion limit.
MAX_DEPTH = 32
MAX_CONDITIONS = 1000
_INT64 = (-(2**63), 2**63 - 1)


def parse_filter_arg(text: str) -> dict[str, Any]:
    """Parse a CLI filter: JSON, or comma-separated key=value pairs."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"filter is not valid JSON: {exc}") from exc
        except RecursionError:
            raise ConfigError(f"filter is nested too deeply (over {MAX_DEPTH} levels)") from None
        if not isinstance(value, dict):
            raise ConfigError("filter must be a JSON object")
        return value
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, val = part.partition("=")
        if not sep:
            raise ConfigError(f"filter part {part!r} is not key=value")
        out[key.strip()] = _coerce(val.strip())
    return out


def _coerce(value: str) -> Scalar:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def check_size(filters: Any) -> None:
    """Refuse a filter nested deeper than MAX_DEPTH or with over MAX_CONDITIONS values,
    before any translation recurses into it (iteratively: a deep one must not recurse)."""
    stack: list[tuple[Any, int]] = [(filters, 1)]
    values = 0
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"filter is nested too deeply (over {MAX_DEPTH} levels)")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        else:
            values += 1
            if values > MAX_CONDITIONS:
                raise ConfigError(f"filter has over {MAX_CONDITIONS} values")


def to_sql(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """Translate to a SQLite WHERE clause over the `chunks` table, with parameters."""
    check_size(filters)
    params: list[Any] = []
    clause = _clause(filters, params)
    return clause, params


def _clause(filters: dict[str, Any], params: list[Any]) -> str:
    if not isinstance(filters, dict) or not filters:
        raise ConfigError("a filter must be a non-empty object")
    parts = []
    for key, cond in filters.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise ConfigError(f"{key} takes a non-empty list of filters")
            joiner = " AND " if key == "$and" else " OR "
            parts.append("(" + joiner.join(_clause(c, params) for c in cond) + ")")
        else:
            parts.append(_field_clause(key, cond, params))
    return "(" + " AND ".join(parts) + ")"


def _field_clause(key: str, cond: Any, params: list[Any]) -> str:
    if not _KEY.match(key):
        raise ConfigError(f"bad filter key {key!r}")
    column = key if key in COLUMNS else f"json_extract(metadata, '$.{key}')"
    if not isinstance(cond, dict):
        cond = {"$eq": cond}
    if not cond:
        raise ConfigError(f"{key}: an empty condition (give a value or an operator)")
    parts = []
    for op, value in cond.items():
        if op in _COMPARE:
            _check_scalar(key, value)
            parts.append(f"{column} {_COMPARE[op]} ?")
            params.append(value)
        elif op in ("$in", "$nin"):
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{key}: {op} takes a non-empty list")
            for v in value:
                _check_scalar(key, v)
            marks = ",".join("?" * len(value))
            neg = "NOT " if op == "$nin" else ""
            parts.append(f"{column} {neg}IN ({marks})")
            params.extend(value)
        elif op == "$exists":
            if not isinstance(value, bool):
                raise ConfigError(f"{key}: $exists takes true or false")
            parts.append(f"{column} IS {'NOT ' if value else ''}NULL")
        else:
            raise ConfigError(f"{key}: unknown operator {op!r}")
    return " AND ".join(parts)


def _check_scalar(key: str, value: Any) -> None:
    if not isinstance(value, Scalar):
        raise ConfigError(f"{key}: filter values must be strings, numbers or booleans")
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        raise ConfigError(f"{key}: {value} is outside the 64-bit integer range")
