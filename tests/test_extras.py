"""Optional extras: the core text path runs without them, and asking for a feature whose
extra is missing says which extra to install; every extra a hint names exists.

The absent dependencies are simulated in a subprocess by an import hook that refuses
them, so the test runs in the full development environment.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from mmrag.registry import EXTRA_OF, install_hint

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "mmrag"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])

# Not core: the default embedded text path must never import these.
HEAVY = (
    "torch",
    "transformers",
    "sentence_transformers",
    "fastapi",
    "uvicorn",
    "av",
    "faster_whisper",
    "PIL",
    "rapidocr_onnxruntime",
    "pymilvus",
)

_HOOK = """
import importlib.abc
import sys

BLOCKED = set({blocked!r})


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (refused)", name=name)
        return None


sys.meta_path.insert(0, Refuse())
"""

_CORE_PATH = """
import json
import sys
import tempfile
from pathlib import Path

import mmrag
import mmrag.index.milvus
import mmrag.index.open
import mmrag.index.store
import mmrag.pipeline
import mmrag.retrieve
from mmrag.indexing.indexer import Indexer
from mmrag.index.store import EmbeddedStore
from mmrag.retrieve import RETRIEVERS
from mmrag.types import Query

root = Path(tempfile.mkdtemp())
(root / "docs").mkdir()
(root / "docs" / "cats.txt").write_text("The cat sat on the mat and purred all afternoon.")
(root / "docs" / "quarks.md").write_text("# Physics\\n\\nQuarks are bound by gluons.")
store = EmbeddedStore(root / "store")
report = Indexer(store, progress=False).index_paths([root / "docs"])
retriever = RETRIEVERS.create("bm25", store=store)
hits = {{q: [Path(h.doc.source).name for h in retriever.retrieve(Query(text=q), 5).hits]
        for q in ("gluons", "purred on the mat")}}
store.close()
print(json.dumps({{
    "added": report.added,
    "errors": [str(e) for e in report.errors],
    "hits": hits,
    "loaded": sorted(m for m in {heavy!r} if m in sys.modules),
}}))
"""

_ASK_FOR_EXTRAS = """
import json
import tempfile
import wave
from pathlib import Path

from mmrag.errors import MissingDependency

root = Path(tempfile.mkdtemp())
clip = root / "tone.wav"
with wave.open(str(clip), "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(16000)
    f.writeframes(b"\\x10\\x00\\xf0\\xff" * 8000)
model_dir = root / "a-local-model"
model_dir.mkdir()


def audio_file():
    from mmrag.ingest.files import load

    load(clip)


def whisper():
    from mmrag.models.whisper import WhisperTranscriber

    WhisperTranscriber("tiny.en")


def server_app():
    from mmrag.server import ServerSettings, create_app

    create_app(ServerSettings(store=root / "store"))


def server_run():
    from mmrag.server import serve

    serve("127.0.0.1", 0, root / "store")


def sentence_transformers_encoder():
    from mmrag.models.text import load_text_encoder

    load_text_encoder("sentence-transformers")


def clip_encoder():
    from mmrag.models.image import load_image_encoder

    load_image_encoder("clip", model=str(model_dir))


def local_generator():
    from mmrag.models.make_lm import make_lm

    make_lm(str(model_dir), runtime="transformers")


def milvus_store():
    from mmrag.index.open import open_store

    open_store("milvus://127.0.0.1:1/papers")


out = {{}}
for case in (audio_file, whisper, server_app, server_run, sentence_transformers_encoder,
             clip_encoder, local_generator, milvus_store):
    try:
        case()
    except MissingDependency as exc:
        out[case.__name__] = str(exc)
    except Exception as exc:
        out[case.__name__] = f"not MissingDependency: {{type(exc).__name__}}: {{exc}}"
    else:
        out[case.__name__] = "no error"
print(json.dumps(out))
"""


def _run(script: str, blocked: tuple[str, ...] = ()) -> dict:
    code = (_HOOK.format(blocked=blocked) if blocked else "") + script
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _core_path(blocked: tuple[str, ...]) -> dict:
    return _run(textwrap.dedent(_CORE_PATH.format(heavy=HEAVY)), blocked)


def _check_core(result: dict) -> None:
    assert result["added"] == 2 and result["errors"] == []
    assert result["hits"]["gluons"] == ["quarks.md"]
    assert result["hits"]["purred on the mat"][0] == "cats.txt"


def test_text_path_runs_without_any_optional_dependency() -> None:
    result = _core_path(blocked=HEAVY)
    _check_core(result)
    assert result["loaded"] == []


def test_text_path_imports_no_optional_dependency_even_when_installed() -> None:
    result = _core_path(blocked=())
    _check_core(result)
    assert result["loaded"] == [], f"imported at module level: {result['loaded']}"


def test_asking_for_a_missing_extra_names_it() -> None:
    result = _run(textwrap.dedent(_ASK_FOR_EXTRAS.format()), blocked=HEAVY)
    expected = {
        "audio_file": "audio",
        "whisper": "audio",
        "server_app": "server",
        "server_run": "server",
        "sentence_transformers_encoder": "torch",
        "clip_encoder": "images",
        "local_generator": "llm",
        "milvus_store": "scale",
    }
    for case, extra in expected.items():
        message = result[case]
        assert install_hint(extra) in message, f"{case}: {message}"
        assert "\n" not in message, f"{case}: the hint is not one line: {message!r}"


# ---- every hint names a real extra ------------------------------------------------------


def _hinted_extras() -> dict[str, str]:
    """Extra -> where in src/ an install hint names it: `mmrag[...]` in any string, and
    the literal extra passed to require / missing_dependency / install_hint."""
    found: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(ROOT))
        for match in re.finditer(r"mmrag\[([A-Za-z0-9_,-]+)\]", text):
            for extra in match.group(1).split(","):
                found.setdefault(extra, where)
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name not in ("require", "missing_dependency", "install_hint"):
                continue
            position = 0 if name == "install_hint" else 1
            args = list(node.args[position : position + 1])
            args += [k.value for k in node.keywords if k.arg == "extra"]
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(arg.value, f"{where}:{node.lineno}")
    return found


def test_every_extra_an_install_hint_names_exists() -> None:
    hinted = _hinted_extras()
    assert {"audio", "images", "ocr", "server", "torch", "llm", "scale"} <= set(hinted)
    unknown = {extra: where for extra, where in hinted.items() if extra not in EXTRAS}
    assert not unknown, f"hints name extras pyproject.toml does not define: {unknown}"
    assert set(EXTRA_OF.values()) <= EXTRAS


def _self_references(requirements: list[str]) -> set[str]:
    found: set[str] = set()
    for requirement in requirements:
        match = re.fullmatch(r"mmrag\[([A-Za-z0-9_,-]+)\]", requirement)
        if match:
            found |= set(match.group(1).split(","))
    return found


def test_extras_refer_only_to_extras_that_exist() -> None:
    optional = PYPROJECT["project"]["optional-dependencies"]
    for extra, requirements in optional.items():
        assert _self_references(requirements) <= EXTRAS, extra
    # all: every single-machine feature (scale needs servers, llama-cpp compiles);
    # dev: all of it, so `make install` ('.[dev,scale]') installs everything
    assert _self_references(optional["all"]) == EXTRAS - {"all", "dev", "scale", "llama-cpp"}
    assert _self_references(optional["dev"]) == {"all"}


def _lock_module():
    spec = importlib.util.spec_from_file_location("mmrag_lock", ROOT / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("module", sorted(EXTRA_OF))
def test_the_extra_a_module_maps_to_installs_it(module: str) -> None:
    providers = metadata.packages_distributions().get(module)
    if not providers:
        pytest.skip(f"{module} is not installed here")
    project = {**PYPROJECT["project"], "dependencies": []}
    pins, _ = _lock_module().closure(project, (EXTRA_OF[module],))
    installs = {canonicalize_name(name) for name in pins}
    assert installs & {canonicalize_name(p) for p in providers}, (
        f"{module} (from {providers}) is not installed by mmrag[{EXTRA_OF[module]}]"
    )


def test_core_dependencies_hold_no_optional_module() -> None:
    requirements = PYPROJECT["project"]["dependencies"]
    core = {canonicalize_name(re.split(r"[<>=!~\[; ]", r)[0]) for r in requirements}
    optional = {
        canonicalize_name(d)
        for module in EXTRA_OF
        for d in metadata.packages_distributions().get(module, [])
    }
    assert not core & optional, f"optional dependencies listed as core: {core & optional}"
