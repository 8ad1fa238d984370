"""Load a causal language model once, from a package, a local path or a hub id.

Packaged models are GGUF files (SmolLM2-135M Q4_1, Qwen2.5 Q4_K_M; see packaged_gguf.py);
transformers dequantises them on first load (20-40 s here), so the converted model is
saved under the cache folder and later loads take a couple of seconds. llama.cpp runs the
same files without conversion (llama_cpp_lm.py).
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.errors import MMRagError, ModelUnavailable
from mmrag.models.packaged_gguf import PACKAGED_GGUF, cache_root, gguf_file
from mmrag.registry import require

DEFAULT_LM = "smollm2-135m-instruct"
_lock = threading.Lock()
_loaded: dict[tuple[str, str], CausalLM] = {}


@dataclass(frozen=True)
class CausalLM:
    """A loaded model and tokenizer, shared by every stage that needs this model."""

    name: str
    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: Any  # transformers PreTrainedTokenizerFast


__all__ = ["DEFAULT_LM", "CausalLM", "cache_root", "load_causal_lm", "load_tokenizer"]
_tokenizers: dict[str, Any] = {}


def load_causal_lm(name: str = DEFAULT_LM, dtype: str = "float32") -> CausalLM:
    """Load (once per process) a causal LM by packaged name, local path or hub id."""
    key = (name, dtype)
    with _lock:
        if key not in _loaded:
            _loaded[key] = _load(name, dtype)
        return _loaded[key]


def _converted(name: str, dtype: str) -> Path:
    return cache_root() / "models" / f"{Path(gguf_file(name).name).stem}-{dtype}"


def load_tokenizer(name: str = DEFAULT_LM) -> Any:
    """Only the model's tokenizer (to count tokens): the weights stay on disk. A packaged
    model already converted for transformers reads the tokenizer saved beside it; one
    not yet converted is converted once, as load_causal_lm does."""
    with _lock:
        if name in _tokenizers:
            return _tokenizers[name]
        loaded = next((lm for (n, _), lm in _loaded.items() if n == name), None)
    if loaded is not None:
        tokenizer = loaded.tokenizer
    else:
        folder = Path(name).expanduser()
        if name in PACKAGED_GGUF:
            try:
                folder = _converted(name, "float32")
            except MMRagError as exc:
                raise ModelUnavailable(str(exc)) from exc
        if (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer  # seconds faster to import than transformers

            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        elif name in PACKAGED_GGUF:
            tokenizer = load_causal_lm(name).tokenizer
        else:
            transformers = require("transformers", "llm")
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(name)
            except OSError as exc:
                raise ModelUnavailable(f"cannot load the tokenizer of {name!r} ({exc})") from exc
    with _lock:
        return _tokenizers.setdefault(name, tokenizer)


def _load(name: str, dtype: str) -> CausalLM:
    torch = require("torch", "llm")
    transformers = require("transformers", "llm")
    torch_dtype = getattr(torch, dtype)
    if name in PACKAGED_GGUF:
        try:
            gguf = gguf_file(name)
        except MMRagError as exc:
            raise ModelUnavailable(str(exc)) from exc
        converted = _converted(name, dtype)
        if not (converted / "config.json").exists():
            require("gguf", "llm")  # transformers reads GGUF files with it
            model = transformers.AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch_dtype
            )
            tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
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
        model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ModelUnavailable(
            f"cannot load causal LM {name!r}: not packaged, not a local path, "
            f"and the hub is unreachable or has no such model ({exc})"
        ) from exc
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return CausalLM(name=name, model=model, tokenizer=tokenizer)
