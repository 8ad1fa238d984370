"""`make bench`: run every benchmark script; each writes its JSON under bench/results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "text_retrieval.py",
    "query_latency.py",
    "indexing.py",
    "rerank.py",
    "refine.py",
    "qa.py",
    "images.py",
    "audio_video.py",
    "serve.py",
    "scale.py",
    "scale_1m.py",  # last: builds ~9 GB of stores under .mmrag-cache and takes hours
]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        script = HERE / name
        if not script.exists():
            continue
        print(f"== {name}", flush=True)
        if subprocess.call([sys.executable, str(script), *sys.argv[1:]]) != 0:
            failed.append(name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
