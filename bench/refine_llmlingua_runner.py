"""Run the `llmlingua` package on prepared samples; executed by bench/refine.py inside its own venv.

LLMLingua 0.2.2 needs transformers 4.x, so it cannot share the project's venv. This
script imports nothing from mmrag: it reads a JSON job, compresses every sample with
the same local SmolLM2 folder, and writes the compressed texts and timings.

    python refine_llmlingua_runner.py JOB.json OUT.json

JOB: {"model_dir": str, "mode": "llmlingua" | "longllmlingua",
      "samples": [{"id", "question", "contexts": [str], "target_token": int}]}
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


class _LocalEncoding:
    """Stands in for tiktoken's cl100k encoding, which LLMLingua downloads at run time.

    It counts with the model's own tokenizer, so budgets mean the same as in mmrag.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def encode(self, text: str, **_: Any) -> list[int]:
        return self._tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int], **_: Any) -> str:
        return self._tokenizer.decode(ids)


def _patch_tiktoken(model_dir: str) -> None:
    import tiktoken
    from transformers import AutoTokenizer

    encoding = _LocalEncoding(AutoTokenizer.from_pretrained(model_dir))
    tiktoken.encoding_for_model = lambda *_a, **_k: encoding
    tiktoken.get_encoding = lambda *_a, **_k: encoding


def _kwargs(mode: str) -> dict[str, Any]:
    if mode == "longllmlingua":
        # The LongLLMLingua recipe from the LLMLingua README (question-aware coarse
        # ranking, contrastive fine pruning, reordering, dynamic ratios).
        return {
            "rank_method": "longllmlingua",
            "condition_in_question": "after_condition",
            "reorder_context": "sort",
            "dynamic_context_compression_ratio": 0.3,
            "condition_compare": True,
            "context_budget": "+100",
        }
    return {}


def main(job_path: str, out_path: str) -> int:
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    _patch_tiktoken(job["model_dir"])
    import torch
    from llmlingua import PromptCompressor

    torch.set_num_threads(int(job.get("threads", torch.get_num_threads())))
    t0 = time.perf_counter()
    compressor = PromptCompressor(model_name=job["model_dir"], device_map="cpu")
    load_seconds = time.perf_counter() - t0
    results = []
    for sample in job["samples"]:
        start = time.perf_counter()
        try:
            out = compressor.compress_prompt(
                sample["contexts"],
                question=sample["question"],
                target_token=sample["target_token"],
                concate_question=False,
                **_kwargs(job["mode"]),
            )
            text, error = out["compressed_prompt"], None
        except Exception as exc:  # record the failure per sample, keep going
            text, error = "", f"{type(exc).__name__}: {exc}"
        results.append(
            {
                "id": sample["id"],
                "text": text,
                "seconds": time.perf_counter() - start,
                "error": error,
            }
        )
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"load_seconds": load_seconds, "results": results}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
