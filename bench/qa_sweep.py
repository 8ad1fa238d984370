"""Answer prompts, models and context budgets compared on the same retrieved contexts.

The full QA benchmark (bench/qa.py) runs the whole pipeline per configuration; most of
its time is the generator, and retrieval, reranking and refining give the same result
for every generator. Here the contexts of N questions are built once per refine budget
(open store, and the store without the gold paragraphs), then every generator
configuration answers them all. Scored like `mmrag eval qa` (official EM/F1, answer in
cited passage, refusal when absent). Writes bench/results/qa-sweep.json.

    .venv/bin/python bench/qa_sweep.py [--dataset squad] [--questions 40]
        [--models qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct]
        [--styles short sentence] [--budgets 150 300] [--rerank-k 3 5] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = Path(os.environ.get("MMRAG_DATA", ROOT.parent / "shared" / "data"))
FILES = {
    "squad": DATA / "squad" / "dev-v1.1.json",
    "hotpotqa": DATA / "hotpotqa",
    "cmrc2018": DATA / "cmrc2018",
}
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


BENCHMARK_QUESTIONS = {"squad": 200, "hotpotqa": 100, "cmrc2018": 200}


def dev_questions(questions: list[Any], n: int, benchmark: int) -> list[Any]:
    """`n` questions spread over the file, none of them among the `benchmark` questions
    bench/qa.py asks: choices are made on these, and checked on those."""
    from mmrag.eval.qa import spread

    taken = {q.id for q in spread(questions, benchmark)}
    rest = [q for q in questions if q.id not in taken]
    # offset by half a step so the dev set does not sit next to the benchmark's items
    step = len(rest) / n
    return [rest[int((i + 0.5) * step)] for i in range(n)]


def contexts(
    dataset: str, n: int, budgets: list[int], ks: list[int], dev: bool = False
) -> dict[str, Any]:
    """{(rerank k, budget): {"open": [Ranked], "absent": [Ranked]}} and the questions.

    Reranking is done once to the largest k: the reranker scores all candidates and
    keeps the best, so its top k of the largest are what reranking to k keeps."""
    from mmrag.eval.qa import _store_name, dataset_encoder, default_cache, load_task, spread
    from mmrag.eval.runner import cached_store
    from mmrag.pipeline import DEFAULT_CONFIG, Pipeline
    from mmrag.stage import Limits

    task = load_task(dataset, FILES[dataset])
    if dev:
        chosen = dev_questions(task.questions, n, BENCHMARK_QUESTIONS[dataset])
    else:
        chosen = spread(task.questions, n)
    gold = {p for q in chosen for p in q.gold}
    enc = dataset_encoder(dataset)
    config = {k: v for k, v in DEFAULT_CONFIG.items() if k != "generate"}
    out: dict[tuple[int, int], dict[str, list[Any]]] = {(k, b): {} for k in ks for b in budgets}
    for part, corpus in (("open", task.corpus()), ("absent", task.corpus(without=gold))):
        name = _store_name(task, corpus, part)
        with cached_store(default_cache(), name, corpus, enc, False) as store:
            pipeline = Pipeline.from_config(config, store)
            rerank, refine = pipeline.steps  # the default config's two
            for q in chosen:
                reranked = rerank.stage.apply(pipeline.retrieve(q.question), Limits(k=max(ks)))
                for k, b in out:
                    refined = refine.stage.apply(reranked.top(k), Limits(tokens=b))
                    out[k, b].setdefault(part, []).append(refined)
    return {"questions": chosen, "contexts": out}


def _refused_by(answer: Any) -> str | None:
    for stage in answer.reports:
        if stage.stage == "generate":
            return stage.extra.get("refused_by")
    return None


def run_config(
    dataset: str,
    questions: list[Any],
    ctx: dict[str, list[Any]],
    generator: Any,
    detail: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    from mmrag.eval.qa import refusal_share, score_answer, summarise
    from mmrag.eval.qa_metrics import SCORERS

    scorer = SCORERS[dataset]
    records, absent = [], []
    for part, sink in (("open", records), ("absent", absent)):
        for q, ranked in zip(questions, ctx[part], strict=True):
            started = time.perf_counter()
            answer = generator.generate(ranked)
            answer.stages = answer.reports
            sink.append(score_answer(q, answer, scorer, time.perf_counter() - started))
            if detail is not None:
                gen = next((r for r in answer.reports if r.stage == "generate"), None)
                extra = gen.extra if gen is not None else {}
                detail.append(
                    {
                        "part": part,
                        **{k: sink[-1][k] for k in ("id", "question", "gold", "answer", "f1")},
                        "gold_retrieved": sink[-1]["gold_retrieved"],
                        "refused_by": _refused_by(answer),
                        "relevance": extra.get("relevance"),
                        "reply": extra.get("model_reply"),
                        "prompt_tokens": extra.get("prompt_tokens"),
                        "first_token_s": extra.get("first_token_s"),
                        "seconds": sink[-1]["seconds"],
                    }
                )
    summary = summarise(records)
    summary["refusal_when_absent"] = refusal_share(absent)
    summary["seconds_p50_absent"] = statistics.median(r["seconds"] for r in absent)
    # question ids, not their text: the repo holds no copy of the datasets
    summary["examples"] = [
        {"id": r["id"], "answer": r["answer"], "f1": r["f1"]} for r in records[:8]
    ]
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="squad", choices=sorted(FILES))
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument(
        "--models",
        nargs="+",
        default=["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"],
    )
    ap.add_argument("--styles", nargs="+", default=["short", "sentence"])
    ap.add_argument("--budgets", nargs="+", type=int, default=[150, 300])
    ap.add_argument("--rerank-k", nargs="+", type=int, help="default: the pipeline's")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-threads", type=int, default=None)
    ap.add_argument(
        "--dev",
        action="store_true",
        help="questions none of which bench/qa.py asks (for choosing settings)",
    )
    ap.add_argument("--refuse-below", type=float, nargs="+", default=[None])
    ap.add_argument("--detail", type=Path, help="per-question records (JSON lines) here")
    ap.add_argument("--out", type=Path, default=RESULTS / "qa-sweep.json")
    args = ap.parse_args()

    from mmrag.generate.llm import LLMGenerator
    from mmrag.models.make_lm import make_lm
    from mmrag.pipeline import DEFAULT_CONFIG

    args.rerank_k = args.rerank_k or [DEFAULT_CONFIG["rerank"]["k"]]
    load0 = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    built = contexts(args.dataset, args.questions, args.budgets, args.rerank_k, args.dev)
    runs = []
    detail: list[dict[str, Any]] | None = [] if args.detail else None
    for model in args.models:
        lm = make_lm(model, threads=args.threads, batch_threads=args.batch_threads)
        for style, k, budget, below in (
            (s, k, b, r)
            for s in args.styles
            for k in args.rerank_k
            for b in args.budgets
            for r in args.refuse_below
        ):
            generator = LLMGenerator(
                lm, style=style, max_tokens=args.max_tokens, refuse_below=below
            )
            load = [round(x, 2) for x in os.getloadavg()]
            start = len(detail) if detail is not None else 0
            summary = run_config(
                args.dataset, built["questions"], built["contexts"][k, budget], generator, detail
            )
            for d in (detail or [])[start:]:
                d.update(model=model, style=style, rerank_k=k, budget=budget, refuse_below=below)
            run = {
                "model": model,
                "style": style,
                "rerank_k": k,
                "budget": budget,
                "refuse_below": below,
                "load_start": load,
            }
            run.update(summary)
            runs.append(run)
            print(
                f"{model} {style} rerank k {k} budget {budget}: F1 {run['f1']} EM {run['em']} "
                f"in-cited {run['answer_in_cited_passage']} supported "
                f"{run['supported_sentence_share']} refusal {run['refusal_when_absent']} "
                f"p50 {run['seconds_p50']} s",
                flush=True,
            )
    result = {
        "benchmark": "qa-sweep",
        "dataset": args.dataset,
        "questions": args.questions,
        "selection": "dev: none of bench/qa.py's questions" if args.dev else "bench/qa.py's spread",
        "max_tokens": args.max_tokens,
        "threads": args.threads,
        "load_average_start": load0,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "seconds_total": round(time.perf_counter() - t0, 1),
        "note": "contexts built once per budget with the default pipeline's retrieve, "
        "rerank and refine stages; 'seconds' is generation plus grounding only",
        "runs": runs,
    }
    if args.detail and detail is not None:
        args.detail.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in detail))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
