"""Local generators on this CPU: each packaged model on each runtime that installs.
Writes bench/results/generators.json.

    .venv/bin/python bench/generators.py [--prompts 6] [--threads 1 2]
        [--models smollm2-135m-instruct qwen2.5-coder-0.5b-instruct ...]
        [--runtimes llama-cpp transformers]

Every (model, runtime, threads) answers the same RAG prompts: a SQuAD question with its
paragraph and two others of the same article, shortened as the default pipeline's
extractive refiner would (budget 300 tokens), up to 60 answer tokens, greedy. Reported:
load seconds, first-token latency (prompt reading), decode tokens/s, seconds per answer
(p50/p95). Answer quality per model is bench/qa.py's job (bench/results/qa.json): both
runtimes run the same GGUF weights (transformers dequantised), so quality is a property
of the model, not of the runtime. Runs with one core kept busy by another process are
recorded separately (`--busy`), as on a laptop doing something else.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = Path(os.environ.get("MMRAG_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "bench" / "results" / "generators.json"


def prompts(n: int) -> list[Any]:
    from mmrag.generate.prompts import build_messages
    from mmrag.refine import REFINERS
    from mmrag.types import Document, Hit, Query, Ranked

    data = json.loads((DATA / "squad" / "dev-v1.1.json").read_text())["data"]
    rnd = random.Random(7)
    refiner = REFINERS.create("extractive")
    out = []
    for article in rnd.sample(data, n):
        paragraphs = article["paragraphs"]
        gold, *others = rnd.sample(range(len(paragraphs)), 3)
        question = paragraphs[gold]["qas"][0]["question"]
        texts = [paragraphs[others[0]]["context"], paragraphs[gold]["context"]]
        texts.append(paragraphs[others[1]]["context"])
        hits = [
            Hit(Document(id=str(i), text=t, source=f"p{i}.txt"), 1.0) for i, t in enumerate(texts)
        ]
        ranked = refiner.refine(Ranked(Query(question), hits), budget_tokens=300)
        out.append(build_messages(question, ranked.hits, max_passage_chars=1500))
    return out


def burn(stop: Any) -> None:
    x = 0
    while not stop.is_set():
        x = (x * 7 + 1) % 1_000_003


def run(model: str, runtime: str, threads: int, messages: list[Any]) -> dict[str, Any]:
    from mmrag.models.make_lm import make_lm

    started = time.perf_counter()
    name, _, dtype = runtime.partition(":")  # "transformers:bfloat16"
    lm = make_lm(model, runtime=name, threads=threads, dtype=dtype or "float32")
    load = time.perf_counter() - started
    first, total, rates, prompt_tokens = [], [], [], []
    lm.chat(messages[0], max_tokens=4)  # warm-up: first call allocates buffers
    for m in messages:
        before = lm.usage.completion_tokens
        t0 = time.perf_counter()
        t_first = None
        for piece in lm.stream(m, 60):
            if t_first is None and piece:
                t_first = time.perf_counter() - t0
        elapsed = time.perf_counter() - t0
        made = lm.usage.completion_tokens - before
        first.append(t_first or elapsed)
        total.append(elapsed)
        if elapsed > (t_first or 0) and made > 1:
            rates.append((made - 1) / (elapsed - (t_first or 0)))
        prompt_tokens.append(lm.usage.prompt_tokens)
    n_prompt = [b - a for a, b in zip([0, *prompt_tokens[:-1]], prompt_tokens, strict=True)]
    return {
        "model": model,
        "runtime": runtime,
        "threads": threads,
        "load_s": round(load, 2),
        "prompt_tokens_p50": statistics.median(n_prompt) if n_prompt else None,
        "first_token_s_p50": round(statistics.median(first), 3),
        "seconds_p50": round(statistics.median(total), 3),
        "seconds_p95": round(sorted(total)[int(0.95 * (len(total) - 1))], 3),
        "decode_tokens_per_s": round(statistics.median(rates), 2) if rates else None,
        "prompt_tokens_per_s": round(
            statistics.median(n / f for n, f in zip(n_prompt, first, strict=True) if f > 0), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--models",
        nargs="+",
        default=[
            "smollm2-135m-instruct",
            "qwen2.5-coder-0.5b-instruct",
            "qwen2.5-coder-1.5b-instruct",
        ],
    )
    parser.add_argument("--runtimes", nargs="+", default=["llama-cpp", "transformers"])
    parser.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    key = "busy" if args.busy else "quiet"
    result = {
        **previous,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "method": __doc__.split("\n\n")[2].replace("\n", " "),
    }
    rows: list[dict[str, Any]] = []
    messages = prompts(args.prompts)
    stop = mp.Event()
    burner = mp.Process(target=burn, args=(stop,), daemon=True) if args.busy else None
    if burner:
        burner.start()
    try:
        for model in args.models:
            for runtime in args.runtimes:
                for threads in args.threads:
                    load = os.getloadavg()[0]
                    try:
                        row = run(model, runtime, threads, messages)
                    except Exception as exc:  # noqa: BLE001 - a runtime that fails is a result
                        row = {
                            "model": model,
                            "runtime": runtime,
                            "threads": threads,
                            "error": str(exc),
                        }
                    row["load_before"] = round(load, 2)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    result[key] = rows
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        stop.set()
        if burner:
            burner.join()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
