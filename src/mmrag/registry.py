"""Map configured names to classes, explicitly.

Entries are "module:Class" strings so a heavy stage is imported only when it is used.
A user's own class is accepted by its import path ("package.module:Class").
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, TypeVar

from mmrag.errors import ConfigError

T = TypeVar("T")


def import_object(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ConfigError(f"expected 'package.module:Name', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import {module_name!r} for {path!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"{module_name!r} has no {attr!r}") from exc


class Registry(Generic[T]):
    def __init__(self, kind: str, entries: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, str | type[T]] = dict(entries or {})

    def register(self, name: str, target: str | type[T]) -> None:
        self._entries[name] = target

    def names(self) -> list[str]:
        return sorted(self._entries)

    def resolve(self, name: str) -> type[T]:
        target = self._entries.get(name)
        if target is None:
            if ":" in name:
                return import_object(name)
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            )
        return import_object(target) if isinstance(target, str) else target

    def create(self, name: str, **params: Any) -> T:
        cls = self.resolve(name)
        try:
            return cls(**params)
        except TypeError as exc:
            raise ConfigError(f"bad parameters for {self.kind} {name!r}: {exc}") from exc


def require(module: str, extra: str) -> Any:
    """Import an optional dependency or explain how to install it."""
    from mmrag.errors import MissingDependency

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{module} is needed here: pip install 'mmrag[{extra}]' ({exc})"
        ) from exc


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """Command-line `key=value` pairs as constructor parameters for a registered name;
    values are read as JSON when they parse (numbers, lists, booleans), else as strings."""
    import json

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params
