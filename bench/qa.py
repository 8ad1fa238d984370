"""End-to-end QA benchmark: the whole pipeline on SQuAD, HotpotQA and CMRC 2018.

Writes bench/results/qa.json (one entry per dataset and pipeline config, each the
result of `mmrag.eval.qa.eval_qa`, per-question records included).

    .venv/bin/python bench/qa.py [--datasets squad,hotpotqa,cmrc2018] [--questions N]
        [--pipeline FILE ...] [--data ../shared/data] [--out FILE] [--quick]

Defaults: SQuAD v1.1 dev 200 questions, the HotpotQA sample's 100, CMRC 2018 trial 200,
each spread evenly over its file, with the library's default pipeline. `--questions`
sets N for every dataset; `--pipeline` (repeatable) runs each dataset once per config.
Each dataset is indexed whole (open corpus) and asked a second time without the gold
paragraphs (refusal); stores are cached under .mmrag-cache/eval-stores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_QUESTIONS = {"squad": 200, "hotpotqa": 100, "cmrc2018": 200}
# Headline numbers printed per run; the JSON holds everything.
HEADLINE = (
    "em",
    "f1",
    "answer_in_cited_passage",
    "cited_share",
    "supported_sentence_share",
    "refusal_when_absent",
    "gold_retrieved_share",
    "seconds_p50",
    "seconds_p95",
    "tokens_per_s",
    "first_token_s_p50",
)


def plan(
    datasets: list[str], questions: int | None, pipelines: list[Path | None]
) -> list[tuple[str, int, Path | None]]:
    """(dataset, N, pipeline config) for every run, in order."""
    return [(d, questions or DEFAULT_QUESTIONS[d], p) for d in datasets for p in pipelines]


def without_dataset_text(run: dict[str, Any]) -> dict[str, Any]:
    """The run with each question's text and gold answers left out (its id stays): the
    results live in the repo, which holds no copy of the datasets."""
    records = [
        {k: v for k, v in r.items() if k not in ("question", "gold")}
        for r in run.get("questions", [])
    ]
    return {**run, "questions": records}


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MMRAG_DATA", ROOT.parent / "shared" / "data")),
    )
    parser.add_argument("--datasets", default=",".join(DEFAULT_QUESTIONS))
    parser.add_argument("--questions", type=int, default=None, help="N for every dataset")
    parser.add_argument(
        "--pipeline", type=Path, action="append", default=None, help="pipeline TOML (repeatable)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="10 questions each, to results/qa-quick.json"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: results/qa.json")
    parser.add_argument("--cache", type=Path, default=ROOT / ".mmrag-cache" / "eval-stores")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from mmrag.errors import MMRagError
    from mmrag.eval.qa import eval_qa

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in DEFAULT_QUESTIONS]
    if unknown:
        parser.error(f"unknown datasets {unknown}; use {', '.join(DEFAULT_QUESTIONS)}")
    questions = args.questions or (10 if args.quick else None)
    out = args.out or RESULTS / ("qa-quick.json" if args.quick else "qa.json")
    runs = plan(datasets, questions, args.pipeline or [None])
    result: dict[str, Any] = {
        "benchmark": "qa",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "plan": [
            {"dataset": d, "questions": n, "pipeline": str(p) if p else None} for d, n, p in runs
        ],
        "runs": [],
    }
    show = sys.stderr.isatty()
    for dataset, n, pipeline in runs:
        print(f"== {dataset}: {n} questions, pipeline {pipeline or 'default'}", flush=True)
        try:
            run = eval_qa(
                dataset,
                args.data / dataset,
                pipeline=pipeline,
                questions=n,
                cache=args.cache,
                show=show,
            )
        except MMRagError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        result["runs"].append(without_dataset_text(run))
        _write(out, result)  # after every run, so a long benchmark keeps what it measured
        headline = {k: run.get(k) for k in HEADLINE}
        print(json.dumps({**headline, "load_average": run["machine"]["load_average_end"]}))
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
