"""Grounding judges measured: does a judge tell supported claims from unsupported ones,
and does it tell a passage that answers a question from one that does not?
Writes bench/results/grounding.json.

    .venv/bin/python bench/grounding.py [--items 150] [--lm-items 40] [--lm MODEL ...]

Claims are built from SQuAD v1.1 dev (items spread over the whole file), three per item:
- supported: the paragraph's sentence that holds the gold answer, against its paragraph;
- wrong fact: the same sentence with the answer replaced by the answer of another
  question (another paragraph), against the same paragraph (a hallucinated detail);
- wrong passage: the true sentence against another paragraph of the same article
  (a citation of the wrong passage).
Relevance (the not-found test): each question against its own paragraph and against
the paragraph of its article that BM25 ranks first among the others.
Thresholds are chosen on the even items (best balanced accuracy) and scored on the odd
ones; AUC is over all items.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = Path(os.environ.get("MMRAG_DATA", ROOT.parent / "shared" / "data"))


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def best_threshold(pos: np.ndarray, neg: np.ndarray) -> float:
    candidates = np.unique(np.concatenate([pos, neg]))
    best, best_acc = 0.0, -1.0
    for t in candidates:
        acc = 0.5 * ((pos >= t).mean() + (neg < t).mean())
        if acc > best_acc:
            best, best_acc = float(t), acc
    return best


def balanced_accuracy(pos: np.ndarray, neg: np.ndarray, t: float) -> float:
    return float(0.5 * ((pos >= t).mean() + (neg < t).mean()))


def build_items(n: int) -> list[dict[str, Any]]:
    from mmrag.index.analyzer import Analyzer
    from mmrag.refine.sentences import split_sentences

    data = json.loads((DATA / "squad" / "dev-v1.1.json").read_text())["data"]
    flat = [
        (ai, pi, qa)
        for ai, art in enumerate(data)
        for pi, p in enumerate(art["paragraphs"])
        for qa in p["qas"]
    ]
    step = max(1, len(flat) // n)
    analyzer = Analyzer()
    items = []
    for k in range(0, len(flat), step):
        ai, pi, qa = flat[k]
        paragraphs = [p["context"] for p in data[ai]["paragraphs"]]
        context = paragraphs[pi]
        answer = qa["answers"][0]
        start = answer["answer_start"]
        sentence = next((context[a:b] for a, b in split_sentences(context) if a <= start < b), None)
        if sentence is None or answer["text"] not in sentence:
            continue
        # another question's answer, from elsewhere in the file, that this paragraph lacks
        other = flat[(k + len(flat) // 2) % len(flat)][2]["answers"][0]["text"]
        if other.lower() in context.lower():
            continue
        q_terms = set(analyzer.tokens(qa["question"]))
        overlaps = [
            (len(q_terms & set(analyzer.tokens(p))), j) for j, p in enumerate(paragraphs) if j != pi
        ]
        if not overlaps:
            continue
        rival = paragraphs[max(overlaps)[1]]
        items.append(
            {
                "question": qa["question"],
                "sentence": sentence.strip(),
                "wrong_fact": sentence.replace(answer["text"], other).strip(),
                "passage": context,
                "other_passage": rival,
            }
        )
        if len(items) >= n:
            break
    return items


def measure(judge: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    sup, fact, wrong, rel_pos, rel_neg = [], [], [], [], []
    for it in items:
        s = judge.scores(it["sentence"], [it["passage"], it["other_passage"]])
        sup.append(s[0])
        wrong.append(s[1])
        fact.append(judge.scores(it["wrong_fact"], [it["passage"]])[0])
        r = judge.scores(it["question"], [it["passage"], it["other_passage"]])
        rel_pos.append(r[0])
        rel_neg.append(r[1])
    seconds = time.perf_counter() - started
    sup, fact, wrong = np.array(sup), np.array(fact), np.array(wrong)
    rel_pos, rel_neg = np.array(rel_pos), np.array(rel_neg)
    even, odd = slice(0, None, 2), slice(1, None, 2)
    unsupported = np.concatenate([fact, wrong])
    t_support = best_threshold(sup[even], np.concatenate([fact[even], wrong[even]]))
    t_relevance = best_threshold(rel_pos[even], rel_neg[even])
    pairs = 5 * len(items)
    return {
        "items": len(items),
        "support": {
            "auc_wrong_fact": round(auc(sup, fact), 4),
            "auc_wrong_passage": round(auc(sup, wrong), 4),
            "threshold_from_even_items": round(t_support, 3),
            "held_out_balanced_accuracy": round(
                balanced_accuracy(sup[odd], np.concatenate([fact[odd], wrong[odd]]), t_support), 4
            ),
            "held_out_share_supported_kept": round(float((sup[odd] >= t_support).mean()), 4),
            "held_out_wrong_fact_caught": round(float((fact[odd] < t_support).mean()), 4),
            "held_out_wrong_passage_caught": round(float((wrong[odd] < t_support).mean()), 4),
            "score_quantiles_supported": np.quantile(sup, [0.1, 0.5, 0.9]).round(3).tolist(),
            "score_quantiles_unsupported": np.quantile(unsupported, [0.1, 0.5, 0.9])
            .round(3)
            .tolist(),
        },
        "relevance": {
            "auc": round(auc(rel_pos, rel_neg), 4),
            "threshold_from_even_items": round(t_relevance, 3),
            "held_out_balanced_accuracy": round(
                balanced_accuracy(rel_pos[odd], rel_neg[odd], t_relevance), 4
            ),
            "held_out_answerable_kept": round(float((rel_pos[odd] >= t_relevance).mean()), 4),
            "held_out_unanswerable_refused": round(float((rel_neg[odd] < t_relevance).mean()), 4),
        },
        "at_default_thresholds": {
            "support_threshold": judge.support_threshold,
            "supported_kept": round(float((sup >= judge.support_threshold).mean()), 4),
            "wrong_fact_caught": round(float((fact < judge.support_threshold).mean()), 4),
            "wrong_passage_caught": round(float((wrong < judge.support_threshold).mean()), 4),
            "relevance_threshold": judge.relevance_threshold,
            "answerable_kept": round(float((rel_pos >= judge.relevance_threshold).mean()), 4),
            "unanswerable_refused": round(float((rel_neg < judge.relevance_threshold).mean()), 4),
        },
        "ms_per_pair": round(1000 * seconds / pairs, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--lm-items", type=int, default=40)
    parser.add_argument("--lm", nargs="*", default=["qwen2.5-coder-0.5b-instruct"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "grounding.json")
    args = parser.parse_args()

    from mmrag.generate.grounding import CrossEncoderJudge, LMJudge
    from mmrag.models.make_lm import make_lm

    items = build_items(args.items)
    result: dict[str, Any] = {
        "dataset": "SQuAD v1.1 dev, items spread over the file",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_before": os.getloadavg(),
        "judges": {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(key: str, value: dict[str, Any]) -> None:
        # written after every judge: the LM judges take minutes per item on this CPU
        result["judges"][key] = value
        result["load_after"] = os.getloadavg()
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(key, json.dumps(value), flush=True)

    save("cross-encoder", measure(CrossEncoderJudge(), items))
    for model in args.lm:
        save(f"lm:{model}", measure(LMJudge(lm=make_lm(model, threads=1)), items[: args.lm_items]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
