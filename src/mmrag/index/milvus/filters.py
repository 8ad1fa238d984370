"""Metadata filters (the Mongo-like dicts of `mmrag.index.filters`) as Milvus boolean expressions.

    {"lang": "en", "page": {"$gte": 3}}  ->  (metadata["lang"] == "en" and metadata["page"] >= 3)

Milvus 2.3 takes no bound parameters in expressions, so every value is written as a
literal: strings JSON-quoted (Milvus reads the same escapes), numbers in `repr`, booleans
as true/false, and keys must match the same strict pattern the SQL translation uses.
`$in` on a metadata key becomes an `or` of equalities: Milvus Lite accepts `in` only on
plain columns. `$ne`/`$nin` on a metadata key also require the key to exist, as in SQL,
where a missing key (NULL) satisfies no comparison.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mmrag.errors import ConfigError, StoreError
from mmrag.index.filters import _KEY, COLUMNS, check_size

_COMPARE = {"$eq": "==", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def to_milvus_expr(filters: dict[str, Any], *, exists: bool = True) -> str:
    """Translate a filter dict to a Milvus boolean expression over the chunks collection.

    `exists`: the server knows the `exists` operator (Milvus >= 2.5 and Lite). Without it
    (Milvus 2.3) `$exists`, `$ne` and `$nin` on a metadata key are refused: 2.3 counts a
    missing key as "not equal", where SQL (the embedded store) matches nothing.
    """
    check_size(filters)
    return _clause(filters, exists)


def literal(value: Any) -> str:
    """A scalar as a Milvus expression literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"filter value {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise ConfigError(f"filter values must be strings, numbers or booleans, not {value!r}")


def _clause(filters: dict[str, Any], exists: bool) -> str:
    if not isinstance(filters, dict) or not filters:
        raise ConfigError("a filter must be a non-empty object")
    parts = []
    for key, cond in filters.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise ConfigError(f"{key} takes a non-empty list of filters")
            joiner = " and " if key == "$and" else " or "
            parts.append("(" + joiner.join(_clause(c, exists) for c in cond) + ")")
        else:
            parts.append(_field_clause(key, cond, exists))
    return "(" + " and ".join(parts) + ")"


def _reference(key: str) -> tuple[str, bool]:
    """The expression naming `key`, and whether it is a plain column."""
    if not _KEY.match(key):
        raise ConfigError(f"bad filter key {key!r}")
    if key in COLUMNS:
        return key, True
    return "metadata" + "".join(f'["{part}"]' for part in key.split(".")), False


def _field_clause(key: str, cond: Any, exists: bool) -> str:
    ref, is_column = _reference(key)
    if not isinstance(cond, dict):
        cond = {"$eq": cond}
    parts = []
    for op, value in cond.items():
        if op in _COMPARE:
            clause = f"{ref} {_COMPARE[op]} {literal(value)}"
            # SQL's NULL != x is not true: a missing key matches no comparison there
            if op == "$ne" and not is_column:
                clause = f"(exists {ref} and {clause})" if exists else _no_exists(key, op)
            parts.append(clause)
        elif op in ("$in", "$nin"):
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{key}: {op} takes a non-empty list")
            values = [literal(v) for v in value]
            if is_column:
                clause = f"{ref} {'not in' if op == '$nin' else 'in'} [{', '.join(values)}]"
            elif op == "$in":
                clause = "(" + " or ".join(f"{ref} == {v}" for v in values) + ")"
            elif exists:
                clause = f"(exists {ref} and not (" + " or ".join(f"{ref} == {v}" for v in values)
                clause += "))"
            else:
                _no_exists(key, op)
            parts.append(clause)
        elif op == "$exists":
            if is_column:
                # columns always exist; stored None is the empty string
                parts.append(f'{ref} != ""' if value else f'{ref} == ""')
            elif not exists:
                _no_exists(key, op)
            else:
                parts.append(f"exists {ref}" if value else f"not exists {ref}")
        else:
            raise ConfigError(f"{key}: unknown operator {op!r}")
    return " and ".join(parts)


def _no_exists(key: str, op: str) -> str:
    raise StoreError(
        f"{key}: {op} on a metadata key needs the exists operator (Milvus >= 2.5 or Milvus Lite)"
    )
