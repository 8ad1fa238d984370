"""Refiner benchmark: does the answer survive compression, and how fast?

Writes bench/results/refine.json.

- SQuAD v1.1 dev: each question's paragraph + 4 distractor paragraphs of the same
  article; 2x / 4x / 8x; share of questions whose gold answer survives intact; tokens/s.
- HotpotQA sample: share of supporting-fact sentences kept (>= half their characters).
- CMRC 2018 trial: answer survival on Chinese.
- Side by side, in the same run: the `llmlingua` package (LongLLMLingua mode) with the
  same SmolLM2 weights, run in its own venv (it needs transformers 4.x; created under
  .mmrag-cache/llmlingua-venv when missing) by bench/refine_llmlingua_runner.py, on
  exactly the same samples and target tokens (at `--llmlingua-rates`, default 4x).
- Visual refiner: crop localisation and G-Prune on real Flickr8k photos (see
  `visual_bench`).

    .venv/bin/python bench/refine.py [--quick] [--data ../shared/data]
        [--parts squad,hotpotqa,cmrc2018,visual] [--out FILE]
        [--lm-questions 12] [--ext-questions 200] [--llmlingua-venv DIR]

Fixed subsets (questions spread evenly through each file): the extractive refiner on
`--ext-questions` SQuAD / CMRC questions and all 100 HotpotQA questions; the LM
refiners (ours and LLMLingua) on `--lm-questions` SQuAD and CMRC questions and half as
many HotpotQA questions, because a 135M LM on two shared CPU cores scores only a few
hundred tokens/s. The extractive refiner is also run on the LM subsets
("extractive-lm-subset") so every method is compared on the same questions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RUNNER = ROOT / "bench" / "refine_llmlingua_runner.py"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def llmlingua_model_dir(cache: Path) -> Path:
    """The converted SmolLM2 folder, loadable by transformers 4.44 (GPT-2 style tokenizer).

    Weights and config are linked as they are; the tokenizer is re-exported as
    vocab.json + merges.txt, which is the form LLMLingua's transformers version reads.
    """
    from mmrag.models.causal_lm import load_causal_lm

    lm = load_causal_lm()  # makes sure the converted model exists in the cache
    source = Path(lm.model.name_or_path)
    target = cache / "models" / "llmlingua-smollm2"
    if (target / "merges.txt").exists():
        return target
    tmp = target.with_name(target.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        if (source / name).exists() and not (tmp / name).exists():
            (tmp / name).symlink_to(source / name)
    spec = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    (tmp / "vocab.json").write_text(json.dumps(spec["model"]["vocab"]), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tok = lm.tokenizer
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "unk_token": tok.unk_token,
        "pad_token": tok.pad_token,
        "add_prefix_space": False,
        "model_max_length": 8192,
    }
    (tmp / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    special = {"additional_special_tokens": [t["content"] for t in spec["added_tokens"]]}
    (tmp / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    tmp.replace(target)
    return target


# LLMLingua 0.2.2 needs transformers 4.x; the project runs on 5.x, so it gets its own venv.
LLMLINGUA_PACKAGES = ["llmlingua==0.2.2", "transformers==4.44.2"]


def ensure_llmlingua_venv(venv: Path) -> str | None:
    """Create the llmlingua venv if missing; None when ready, else why it could not be."""
    python = venv / "bin" / "python"
    if not python.exists():
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", "torch==2.13.0"],  # the CPU build
            [str(python), "-m", "pip", "install", "-q", *LLMLINGUA_PACKAGES],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()
                return f"{' '.join(step[:4])} failed: {tail[-1] if tail else done.returncode}"
    check = subprocess.run([str(python), "-c", "import llmlingua"], capture_output=True, text=True)
    if check.returncode != 0:
        return f"llmlingua does not import: {check.stderr.strip().splitlines()[-1]}"
    return None


def run_llmlingua(
    venv: Path, model_dir: Path, samples: list[Any], rate: float, counter: Any
) -> dict[str, Any]:
    """LLMLingua (LongLLMLingua recipe) on the same samples and the same target tokens."""
    from mmrag.eval.refine import answer_survives

    python = venv / "bin" / "python"
    if not python.exists():
        return {"error": f"no llmlingua venv at {venv}"}
    jobs = []
    for s in samples:
        texts = [t for _, t in s.passages]
        n_in = sum(counter.count_many(texts))
        jobs.append(
            {
                "id": s.id,
                "question": s.question,
                "contexts": texts,
                "target_token": math.ceil(n_in / rate),
                "tokens_in": n_in,
            }
        )
    with tempfile.TemporaryDirectory() as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job = {"model_dir": str(model_dir), "mode": "longllmlingua", "samples": jobs, "threads": 2}
        job_path.write_text(json.dumps(job), encoding="utf-8")
        done = subprocess.run(
            [str(python), str(RUNNER), str(job_path), str(out_path)],
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )
        if done.returncode != 0:
            return {
                "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            }
        out = json.loads(out_path.read_text(encoding="utf-8"))
    results = {r["id"]: r for r in out["results"]}
    survived = errors = tokens_out = tokens_in = 0
    seconds = 0.0
    for s, j in zip(samples, jobs, strict=True):
        r = results[s.id]
        errors += r["error"] is not None
        survived += answer_survives(r["text"], s.answers)
        tokens_in += j["tokens_in"]
        tokens_out += counter.count(r["text"])
        seconds += r["seconds"]
    return {
        "answer_survival": round(survived / len(samples), 4),
        "tokens_per_s": round(tokens_in / max(seconds, 1e-9), 1),
        "achieved_rate": round(tokens_in / max(tokens_out, 1), 3),
        "questions": len(samples),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "seconds": round(seconds, 2),
        "errors": errors,
        "load_seconds": round(out["load_seconds"], 2),
    }


def visual_bench(flickr: Path, n_pairs: int) -> dict[str, Any]:
    """Crop localisation and G-Prune on real Flickr8k photos, in composites with a known answer.

    Crops: a dog photo and a dog-free photo side by side (both orders); asked "a dog" or
    the other photo's own first caption, is the chosen crop's centre on the right photo?
    Tokens: a photo beside a flat grey panel of equal size; share of the tokens G-Prune
    keeps (half) that lie on the photo (0.5 would be chance).
    """
    import csv

    import numpy as np
    from PIL import Image

    from mmrag.refine.visual import VisualRefiner, gprune_keep, gprune_scores

    captions: dict[str, list[str]] = {}
    with open(flickr / "captions_en.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            captions.setdefault(row["image"], []).append(row["caption"].strip(" ."))
    names = sorted(captions)
    dogs = [i for i in names if all("dog" in c.lower() for c in captions[i])]
    others = [i for i in names if not any("dog" in c.lower() for c in captions[i])]
    dogs, others = (
        dogs[:: len(dogs) // n_pairs][:n_pairs],
        others[:: len(others) // n_pairs][:n_pairs],
    )
    refiner = VisualRefiner(text_refiner=None)
    refiner.encoder.encode_texts(["warm up"])  # load outside the timing
    outcome = {"right": 0, "whole_image": 0, "wrong": 0}
    start = time.perf_counter()
    for dog, other in zip(dogs, others, strict=True):
        a = Image.open(flickr / "images" / dog).convert("RGB")
        b = Image.open(flickr / "images" / other).convert("RGB")
        h = min(a.height, b.height)
        a = a.resize((round(a.width * h / a.height), h))
        b = b.resize((round(b.width * h / b.height), h))
        for left, right in ((a, b), (b, a)):
            comp = Image.new("RGB", (left.width + right.width, h))
            comp.paste(left, (0, 0))
            comp.paste(right, (left.width, 0))
            for question, target in (("a dog", a), (captions[other][0], b)):
                box, _, _ = refiner.choose_crop(comp, question)
                if box == (0, 0, comp.width, comp.height):
                    outcome["whole_image"] += 1
                    continue
                on_left = (box[0] + box[2]) / 2 < left.width
                outcome["right" if on_left == (target is left) else "wrong"] += 1
    crop_seconds = time.perf_counter() - start
    on_photo = []
    for name in dogs + others:
        photo = Image.open(flickr / "images" / name).convert("RGB")
        comp = Image.new("RGB", (2 * photo.width, photo.height), (128, 128, 128))
        comp.paste(photo, (0, 0))
        fmap = refiner.token_features(comp)
        rows, cols, dim = fmap.shape
        kept = gprune_keep(gprune_scores(fmap.reshape(-1, dim)), 0.5)
        on_photo.append(float(np.mean(kept % cols < cols // 2)))
    decisions = sum(outcome.values())
    return {
        "pairs": n_pairs,
        "crop_decisions": decisions,
        "crop_on_right_photo": round(outcome["right"] / decisions, 4),
        "crop_whole_image": round(outcome["whole_image"] / decisions, 4),
        "crop_on_wrong_photo": round(outcome["wrong"] / decisions, 4),
        "crop_seconds_per_decision": round(crop_seconds / decisions, 3),
        "gprune_kept_on_photo_vs_flat_panel": round(float(np.mean(on_photo)), 4),
        "gprune_images": len(on_photo),
        "encoder": "lit",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="small subsets, 4x only")
    parser.add_argument("--lm-questions", type=int, default=12)
    parser.add_argument(
        "--llmlingua-venv", type=Path, default=ROOT / ".mmrag-cache" / "llmlingua-venv"
    )
    parser.add_argument("--skip-llmlingua", action="store_true")
    parser.add_argument("--skip-visual", action="store_true")
    parser.add_argument(
        "--parts", default="squad,hotpotqa,cmrc2018,visual", help="comma-separated sections"
    )
    parser.add_argument("--ext-questions", type=int, default=200)
    parser.add_argument(
        "--out", type=Path, default=None, help="results file (default: refine.json)"
    )
    parser.add_argument(
        "--llmlingua-rates", default="4", help="comma-separated rates for the llmlingua package"
    )
    args = parser.parse_args()

    import torch

    from mmrag.eval.refine import evaluate_refiner, hotpot_samples, squad_samples
    from mmrag.models.causal_lm import cache_root
    from mmrag.refine import load_refiner

    torch.set_num_threads(2)
    n_lm = 8 if args.quick else args.lm_questions
    n_ext = 50 if args.quick else args.ext_questions
    parts = set(args.parts.split(","))
    # 4x first: the rate the target is set at, in case a long run is cut short.
    rates = [4.0] if args.quick else [4.0, 2.0, 8.0]
    llmlingua_rates = {float(r) for r in args.llmlingua_rates.split(",")}
    squad_all = squad_samples(args.data / "squad" / "dev-v1.1.json", n=200)
    cmrc_all = squad_samples(args.data / "cmrc2018" / "trial.json", n=200)
    hotpot_all = hotpot_samples(args.data / "hotpotqa" / "dev_distractor_sample100.json")
    # LM subsets are spread through the same 200 so every article is still covered.
    squad_lm = squad_all[:: max(1, len(squad_all) // n_lm)][:n_lm]
    cmrc_lm = cmrc_all[:: max(1, len(cmrc_all) // n_lm)][:n_lm]
    hotpot_lm = hotpot_all[:: max(1, len(hotpot_all) // (n_lm // 2))][: n_lm // 2]

    extractive = load_refiner("extractive")
    lingua = load_refiner("lingua")
    fast = load_refiner("lingua-fast")
    counter = lingua.counter()
    evaluate_refiner(lingua, squad_lm[:1], rate=4.0)  # load models outside the timings
    evaluate_refiner(fast, squad_lm[:1], rate=4.0)
    evaluate_refiner(extractive, squad_lm[:1], rate=4.0)

    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        },
        "subsets": {
            "extractive_questions": n_ext,
            "lm_questions": n_lm,
            "hotpot_lm_questions": len(hotpot_lm),
            "distractors": 4,
        },
        "squad": {},
        "hotpotqa": {},
        "cmrc2018": {},
    }
    path = args.out or RESULTS / ("refine-quick.json" if args.quick else "refine.json")

    def save() -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def record(task: str, name: str, rate: float, score: Any) -> None:
        result[task].setdefault(name, {})[f"{rate:g}x"] = score
        save()
        print(task, name, f"{rate:g}x", json.dumps(score), flush=True)

    model_dir = None
    needs_llmlingua = parts & {"squad", "cmrc2018"}
    if not args.skip_llmlingua and needs_llmlingua:
        problem = ensure_llmlingua_venv(args.llmlingua_venv)
        try:
            if problem is None:
                model_dir = llmlingua_model_dir(cache_root())
        except Exception as exc:  # report and go on with our own refiners
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            result["llmlingua_error"] = problem

    for rate in rates if "squad" in parts else []:
        record(
            "squad",
            "extractive",
            rate,
            evaluate_refiner(extractive, squad_all[:n_ext], rate=rate).to_dict(),
        )
        record(
            "squad",
            "extractive-lm-subset",
            rate,
            evaluate_refiner(extractive, squad_lm, rate=rate).to_dict(),
        )
        record("squad", "lingua", rate, evaluate_refiner(lingua, squad_lm, rate=rate).to_dict())
        score = evaluate_refiner(fast, squad_lm, rate=rate)
        record("squad", "lingua-fast", rate, score.to_dict())
        if model_dir is not None and rate in llmlingua_rates:
            record(
                "squad",
                "llmlingua",
                rate,
                run_llmlingua(args.llmlingua_venv, model_dir, squad_lm, rate, counter),
            )
    if "hotpotqa" in parts:
        score = evaluate_refiner(extractive, hotpot_all, rate=4.0)
        record("hotpotqa", "extractive", 4.0, score.to_dict())
        record("hotpotqa", "lingua", 4.0, evaluate_refiner(lingua, hotpot_lm, rate=4.0).to_dict())
        score = evaluate_refiner(fast, hotpot_lm, rate=4.0)
        record("hotpotqa", "lingua-fast", 4.0, score.to_dict())
    if "cmrc2018" in parts:
        score = evaluate_refiner(extractive, cmrc_all[:n_ext], rate=4.0)
        record("cmrc2018", "extractive", 4.0, score.to_dict())
        score = evaluate_refiner(extractive, cmrc_lm, rate=4.0)
        record("cmrc2018", "extractive-lm-subset", 4.0, score.to_dict())
        record("cmrc2018", "lingua", 4.0, evaluate_refiner(lingua, cmrc_lm, rate=4.0).to_dict())
        score = evaluate_refiner(fast, cmrc_lm, rate=4.0)
        record("cmrc2018", "lingua-fast", 4.0, score.to_dict())
    if "cmrc2018" in parts and model_dir is not None:
        record(
            "cmrc2018",
            "llmlingua",
            4.0,
            run_llmlingua(args.llmlingua_venv, model_dir, cmrc_lm, 4.0, counter),
        )

    if "visual" in parts and not args.skip_visual:
        result["visual"] = visual_bench(args.data / "flickr8k", 4 if args.quick else 8)
        save()
        print("visual", json.dumps(result["visual"]), flush=True)

    peer = result["squad"].get("llmlingua", {}).get("4x")
    for name in ("lingua", "lingua-fast", "extractive-lm-subset"):
        ours = result["squad"].get(name, {}).get("4x")
        if ours and peer and "answer_survival" in peer:
            result.setdefault("target_4x", {"wanted": "survival >= +10 points and speed >= 3x"})
            result["target_4x"][name] = {
                "survival_points_over_llmlingua": round(
                    100 * (ours["answer_survival"] - peer["answer_survival"]), 1
                ),
                "speedup_over_llmlingua": round(
                    ours["tokens_per_s"] / max(peer["tokens_per_s"], 1e-9), 2
                ),
            }
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    print(json.dumps(result.get("target_4x", {}), indent=2))


if __name__ == "__main__":
    sys.exit(main())
