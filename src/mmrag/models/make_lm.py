"""Which language model a stage gets: the local one or an OpenAI-compatible endpoint.

Generators, LLM rerankers and LLM judges all ask for a model by the same options, so
they are made in one place, below the stages that use them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mmrag.errors import ConfigError
from mmrag.models.lm import LanguageModel
from mmrag.registry import require

log = logging.getLogger(__name__)

RUNTIMES = ("llama-cpp", "transformers")


def _gguf_model(model: str) -> bool:
    from mmrag.models.packaged_gguf import PACKAGED_GGUF

    return model in PACKAGED_GGUF or (model.endswith(".gguf") and Path(model).is_file())


def make_lm(
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    api_key_env: str | None = None,
    timeout: float = 60.0,
    retries: int = 2,
    concurrency: int = 4,
    runtime: str | None = None,
    threads: int | None = None,
    dtype: str = "float32",
    batch_threads: int | None = None,
) -> LanguageModel:
    """The local model (no `base_url`) or an OpenAI-compatible endpoint.

    Locally, `runtime` is "llama-cpp" or "transformers"; None picks llama.cpp for GGUF
    models when it is installed, transformers otherwise (with a warning for GGUF models,
    which run several times slower there). `threads` and `batch_threads` are llama.cpp's
    decode and prompt threads (None: its defaults, see llama_cpp_lm).
    """
    if base_url is not None:
        if not model:
            raise ConfigError("an OpenAI-compatible generator needs a model name")
        from mmrag.models.openai_lm import OpenAICompatibleLM

        key = (
            api_key
            if api_key is not None
            else (os.environ.get(api_key_env) if api_key_env else None)
        )
        return OpenAICompatibleLM(
            base_url=base_url,
            model=model,
            api_key=key,
            timeout=timeout,
            retries=retries,
            concurrency=concurrency,
        )
    if runtime is not None and runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    from mmrag.models.causal_lm import DEFAULT_LM
    from mmrag.models.llama_cpp_lm import llama_cpp_available

    model = model or DEFAULT_LM
    if runtime is None:
        runtime = "transformers"
        if _gguf_model(model):
            if llama_cpp_available():
                runtime = "llama-cpp"
            else:
                log.warning(
                    "llama.cpp is not installed (make llama-runtime); running %s on "
                    "transformers, several times slower",
                    model,
                )
    if runtime == "llama-cpp":
        from mmrag.models.llama_cpp_lm import LlamaCppLM

        return LlamaCppLM(model, threads=threads, batch_threads=batch_threads)
    if threads is not None:
        require("torch", "llm").set_num_threads(threads)
    from mmrag.models.local_lm import LocalLM

    return LocalLM(model, dtype=dtype)
