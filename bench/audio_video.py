"""Audio and video benchmark: FSDD spoken digits (precision@10 per digit for "seven" / "7"
queries), ESC-50 sounds (mAP for class names and short descriptions, zero-shot through
Whisper's sound tags), constructed video clips (caption / narration -> clip and time span,
R@1 / R@5), and ingest throughput. Writes bench/results/audio_video.json, part by part.

    .venv/bin/python bench/audio_video.py [--quick] [--data ../shared/data] [--asr tiny.en]

Stores are built from scratch in a temporary folder on every run, so the index times
are real ingest times (decoding, Whisper, embedding, writing): audio seconds transcribed
per wall second, video minutes ingested per minute. Video clips are CONSTRUCTED: held-out
Flickr8k photos with espeak-ng narration (no real video data set is available here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _save(result: dict[str, Any], name: str) -> None:
    """Merge this run's parts into the results file (parts may run in separate processes,
    e.g. `--only fsdd` beside `--only esc50 --only video`); written atomically."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    merged = json.loads(path.read_text()) if path.is_file() else {}
    merged.update(result)
    merged["notes"] = {**merged.get("notes", {}), **result.get("notes", {})}
    staging = path.with_suffix(f".tmp-{os.getpid()}")
    staging.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
    os.replace(staging, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--asr", default="tiny.en")
    parser.add_argument("--quick", action="store_true", help="small subsets, a few minutes")
    parser.add_argument("--only", choices=("fsdd", "esc50", "video", "likelihood"), action="append")
    parser.add_argument("--likelihood-depth", type=int, default=20)
    parser.add_argument(
        "--fsdd-per-digit", type=int, default=None, help="FSDD recordings per digit (all)"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmrag.eval.audio import eval_esc50, eval_fsdd
    from mmrag.eval.video import eval_video

    name = "audio_video-quick" if args.quick else "audio_video"
    parts = args.only or ["fsdd", "esc50", "video", "likelihood"]

    result: dict[str, Any] = {
        f"machine_{'+'.join(parts)}": {
            "python": platform.python_version(),
            "cpu": platform.processor(),
            "cores": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "quick": args.quick,
        "notes": {
            "fsdd": "every recording indexed by the audio loader (Whisper transcript, number "
            "spellings added; a short utterance also gets the digit whose spellings "
            "together come within 3 nats of Whisper's first word, margin set on "
            "espeak-ng words, not FSDD); queries 'seven' (word) and '7' (numeral); "
            "relevant = recordings of that digit; p@10 per digit. The BM25 analyzer "
            "keeps tokens of 2+ characters (as bm25s / scikit-learn), so '7' is an "
            "empty BM25 query",
            "esc50": "zero-shot: Whisper's 8 best sound tags per clip (beam search after "
            "'(': 'dog barking', 'dog growling', ...) are the clip's text (bm25/dense/"
            "hybrid); 'likelihood' rescores the hybrid top --likelihood-depth by Whisper's "
            "log-probability of '(query)' for the clip; nothing is trained on ESC-50, so "
            "all folds are held out",
            "video": "CONSTRUCTED clips: 3 held-out Flickr8k photos each + espeak-ng "
            "narration of their first captions; 'caption' queries are second captions, "
            "never spoken",
            "throughput": "index wall time from scratch on a shared 2-core machine (see the "
            "load average); *_per_cpu_s counts this process's CPU seconds (all threads), "
            "which depends less on what else runs",
        },
    }
    with tempfile.TemporaryDirectory(prefix="mmrag-bench-av-") as tmp:
        stores = Path(tmp)
        if "fsdd" in parts:
            start = time.perf_counter()
            result["fsdd"] = eval_fsdd(
                args.data / "fsdd",
                stores,
                ("bm25", "dense", "hybrid"),
                args.asr,
                per_digit=15 if args.quick else args.fsdd_per_digit,
            )
            result["fsdd"]["wall_seconds"] = round(time.perf_counter() - start, 1)
            print("fsdd", json.dumps(result["fsdd"]), flush=True)
            _save(result, name)
        if "esc50" in parts:
            start = time.perf_counter()
            result["esc50"] = eval_esc50(
                args.data / "esc50",
                stores,
                ("bm25", "dense", "hybrid"),
                args.asr,
                limit=50 if args.quick else None,
            )
            result["esc50"]["wall_seconds"] = round(time.perf_counter() - start, 1)
            print("esc50", json.dumps(result["esc50"]), flush=True)
            _save(result, name)
        if "video" in parts:
            start = time.perf_counter()
            # clips and store are built afresh (a clip takes ~0.5 s to build)
            result["video"] = eval_video(
                args.data / "flickr8k", stores / "video", 5 if args.quick else 20, asr=args.asr
            )
            result["video"]["wall_seconds"] = round(time.perf_counter() - start, 1)
            print("video", json.dumps(result["video"]), flush=True)
            _save(result, name)
        if "likelihood" in parts:
            # last: the slowest part (one Whisper decoder pass per query and candidate);
            # the ESC-50 store of the part above is reused when it ran
            start = time.perf_counter()
            scored = eval_esc50(
                args.data / "esc50",
                stores,
                ("likelihood",),
                args.asr,
                limit=50 if args.quick else None,
                likelihood_depth=args.likelihood_depth,
            )
            result["esc50_likelihood"] = {
                "depth": args.likelihood_depth,
                "first_stage": "hybrid",
                **scored["likelihood"],
                "wall_seconds": round(time.perf_counter() - start, 1),
            }
            print("likelihood", json.dumps(result["esc50_likelihood"]), flush=True)
            _save(result, name)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
