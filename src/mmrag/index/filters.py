"""Metadata filters: one small Mongo-like dict language, translated per backend.

    {"lang": "en", "page": {"$gte": 3}, "$or": [{"kind": "pdf"}, {"kind": "md"}]}

Keys name a chunk column (modality, source_id, source) or a metadata field (dotted
paths allowed). Values are bound as parameters, never spliced into the query text.
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


def parse_filter_arg(text: str) -> dict[str, Any]:
    """Parse a CLI filter: JSON, or comma-separated key=value pairs."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"filter is not valid JSON: {exc}") from exc
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


def to_sql(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """Translate to a SQLite WHERE clause over the `chunks` table, with parameters."""
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
            parts.append(f"{column} IS {'NOT ' if value else ''}NULL")
        else:
            raise ConfigError(f"{key}: unknown operator {op!r}")
    return " AND ".join(parts)


def _check_scalar(key: str, value: Any) -> None:
    if not isinstance(value, Scalar):
        raise ConfigError(f"{key}: filter values must be strings, numbers or booleans")
