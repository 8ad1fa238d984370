"""Map configured names to classes, explicitly.

Entries are "module:Class" strings so a heavy stage is imported only when it is used.
A user's own class is accepted by its import path ("package.module:Class").
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, TypeVar

from mmrag.errors import ConfigError, MissingDependency

T = TypeVar("T")


# The extra of pyproject.toml's [project.optional-dependencies] that installs each optional
# module mmrag imports; everything else it imports is a core dependency.
EXTRA_OF: dict[str, str] = {
    "torch": "torch",
    "transformers": "torch",
    "sentence_transformers": "torch",
    "accelerate": "torch",
    "safetensors": "torch",
    "gguf": "llm",
    "av": "audio",
    "faster_whisper": "audio",
    "ctranslate2": "audio",
    "PIL": "images",
    "efficientnet_lite_pytorch": "images",
    "rapidocr_onnxruntime": "ocr",
    "cv2": "ocr",
    "fastapi": "server",
    "starlette": "server",
    "pydantic": "server",
    "uvicorn": "server",
    "multipart": "server",
    "pymilvus": "scale",
    "ray": "scale",
    "llama_cpp": "llama-cpp",
}


def install_hint(extra: str) -> str:
    """The one way an install hint is written: pip install 'mmrag[<extra>]'."""
    return f"pip install 'mmrag[{extra}]'"


def missing_dependency(
    module: str, extra: str | None = None, cause: BaseException | None = None, note: str = ""
) -> MissingDependency:
    """The error for an optional module that is not installed, naming the extra to install."""
    extra = extra or EXTRA_OF.get(module.partition(".")[0])
    hint = install_hint(extra) if extra else f"pip install {module.partition('.')[0]}"
    details = "; ".join(part for part in (note, str(cause) if cause else "") if part)
    return MissingDependency(
        f"{module} is needed here: {hint}" + (f" ({details})" if details else "")
    )


def require(module: str, extra: str | None = None, note: str = "") -> Any:
    """Import an optional dependency or explain how to install it.

    `extra` defaults to the module's entry in `EXTRA_OF`; pass a wider one where the
    caller needs more than this module (a local generator: 'llm', not just 'torch').
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_dependency(module, extra, exc, note) from exc


def import_object(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ConfigError(f"expected 'package.module:Name', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing in EXTRA_OF:  # a registered stage whose optional dependency is absent
            raise missing_dependency(exc.name or missing, cause=exc) from exc
        raise ConfigError(f"cannot import {module_name!r} for {path!r}: {exc}") from exc
    except (ImportError, ValueError, TypeError) as exc:  # "" or ".x" (relative) is no module
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
