"""Print the lock file (`make lock`): name==version of every installed distribution that
mmrag's requirements resolve to, for `pip install -c requirements.lock`.

mmrag's own requirements are read from pyproject.toml (the editable install's metadata
may predate an edit); each one is followed through the installed distributions'
Requires-Dist, markers evaluated with the extras asked for, and pinned at the version
this environment holds. What the Makefile installs with --no-deps (model packages) is
pinned there, not here, and so is not in this closure.

    python scripts/lock.py [pyproject.toml] > requirements.lock
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

# What `make install` installs: '.[dev,scale]', then llama-cpp-python (llama-runtime).
ROOT_EXTRAS = ("dev", "scale", "llama-cpp")


def closure(project: dict, extras: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """{distribution name: installed version} reached from `project` with `extras`, and
    the required names that are not installed."""
    own = canonicalize_name(project["name"])
    optional = {canonicalize_name(k): v for k, v in project["optional-dependencies"].items()}
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    wanted: dict[NormalizedName, set[str]] = {}
    own_extras: set[str] = set()
    missing: list[str] = []
    stack = [Requirement(r) for r in project["dependencies"]]
    stack += [Requirement(f"{own}[{','.join(extras)}]")]
    while stack:
        req = stack.pop()
        name = canonicalize_name(req.name)
        asked = {canonicalize_name(e) for e in req.extras}
        if name == own:  # a self-reference: mmrag[all] inside mmrag's extras
            for extra in sorted(asked - own_extras):
                own_extras.add(extra)
                stack += [Requirement(r) for r in optional[extra]]
            continue
        before = wanted.get(name)
        if before is not None and asked <= before:
            continue
        now = wanted[name] = (before or set()) | asked
        dist = installed.get(name)
        if dist is None:
            missing.append(str(req))
            continue
        for line in dist.requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(
                dep.marker.evaluate({"extra": e}) for e in ("", *sorted(now))
            ):
                stack.append(dep)
    pins = {installed[n].metadata["Name"]: installed[n].version for n in wanted if n in installed}
    return pins, missing


def main(argv: list[str]) -> int:
    pyproject = Path(argv[0] if argv else "pyproject.toml")
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    pins, missing = closure(project, ROOT_EXTRAS)
    for req in sorted(set(missing)):
        print(f"lock: {req} is required but not installed; not pinned", file=sys.stderr)
    print(f"# make lock: what .[{','.join(ROOT_EXTRAS)}] resolved to in .venv (scripts/lock.py).")
    print("# Used as pip constraints by make install; regenerate after changing pyproject.toml.")
    for name in sorted(pins, key=canonicalize_name):
        print(f"{name}=={pins[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
