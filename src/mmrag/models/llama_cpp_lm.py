"""A local chat model on llama.cpp (llama-cpp-python): GGUF files run quantised, in process.

The packaged Qwen2.5 and SmolLM2 models are GGUF Q4 files; llama.cpp runs them as they
are, several times faster on a CPU than transformers, which dequantises them first
(bench/results/generators.json). The chat template is the one the GGUF file carries, so
a model is prompted the way it was trained. One model object serves one call at a time.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError, ModelError, ModelUnavailable
from mmrag.models.lm import Completion, LanguageModel, Message, Usage
from mmrag.models.local_lm import fit_window, text_messages
from mmrag.models.packaged_gguf import PACKAGED_GGUF, gguf_file
from mmrag.registry import require

DEFAULT_CONTEXT = 4096


def llama_cpp_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):  # an import hook that refuses it, a broken install
        return False


def _require_llama_cpp() -> Any:
    return require(
        "llama_cpp",
        "llama-cpp",
        note="it compiles from source; `make llama-runtime` builds it once",
    )


def gguf_path(model: str) -> Path:
    """A packaged model's (joined, verified) file, or a local .gguf path."""
    if model in PACKAGED_GGUF:
        return gguf_file(model)
    path = Path(model).expanduser()
    if path.is_file():
        return path.resolve()
    raise ModelUnavailable(
        f"llama.cpp needs a GGUF file: {model!r} is neither a packaged model "
        f"({', '.join(PACKAGED_GGUF)}) nor an existing .gguf path"
    )


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads() -> int:
    """Decode threads: all cores this process may use but one. Decoding a token is many
    small steps at which llama.cpp's threads wait for each other; with every core taken,
    one busy core stalls them all (bench/results/generators.json: Qwen2.5-1.5B decode
    10.6 tok/s on one thread, 0.85 on two, on this 2-core machine with other work
    running)."""
    return max(1, _cores() - 1)


def default_batch_threads() -> int:
    """Prompt threads: every core. Reading the prompt is a few large matrix products, so
    a thread that waits for a busy core waits once per batch, not once per token: a
    ~500-token SQuAD prompt for Qwen2.5-1.5B took 5.9 s on two threads against 10.2 s on
    one on a quiet machine, and 9.8 s against 10.5 s with a busy loop on the other core."""
    return _cores()


@lru_cache(maxsize=4)
def _load(path: str, n_ctx: int, threads: int, batch_threads: int) -> Any:
    llama_cpp = _require_llama_cpp()
    try:
        llm = llama_cpp.Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=batch_threads,
            n_batch=512,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelUnavailable(f"llama.cpp cannot load {path}: {exc}") from exc
    # freed before interpreter shutdown: its destructor fails once llama_cpp's globals are gone
    atexit.register(llm.close)
    return llm


class LlamaCppLM(LanguageModel):
    """A GGUF model on llama.cpp: a packaged name or a path to a .gguf file."""

    def __init__(
        self,
        model: str = "qwen2.5-coder-0.5b-instruct",
        *,
        context: int = DEFAULT_CONTEXT,
        threads: int | None = None,
        batch_threads: int | None = None,
    ) -> None:
        if context < 256:
            raise ConfigError(f"context must be at least 256 tokens, got {context}")
        self.name = model
        self.usage = Usage()
        self.window = context
        for what, n in (("threads", threads), ("batch_threads", batch_threads)):
            if n is not None and n < 1:
                raise ConfigError(f"{what} must be at least 1, got {n}")
        self.threads = threads or default_threads()
        self.batch_threads = batch_threads or default_batch_threads()
        self._llm = _load(str(gguf_path(model)), context, self.threads, self.batch_threads)
        self._lock = threading.Lock()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = self._llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(f"{model!r} carries no chat template; it is not a chat model")
        vocab = self._llm.tokenizer()
        eos = vocab.decode([self._llm.token_eos()]) if self._llm.token_eos() >= 0 else ""
        bos = vocab.decode([self._llm.token_bos()]) if self._llm.token_bos() >= 0 else ""
        self._format = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._eos_text = eos

    # ---- prompts -----------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_ids(self, messages: Sequence[Message], reserve: int = 0) -> list[int]:
        """Token ids of the chat prompt, cut in the middle if it would not fit the window."""
        rendered = self._format(messages=text_messages(messages))
        ids: list[int] = self._llm.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=False, special=True
        )
        return fit_window(ids, self.window, reserve)

    def _record(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.usage.add(Completion("", prompt_tokens, completion_tokens))

    # ---- LanguageModel -----------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> Completion:
        done = Completion("")
        text = "".join(self._generate(messages, max_tokens, temperature, stop, done))
        done.text = text
        return done

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> Iterator[str]:
        """Pieces as generated; closing the iterator stops the model at its next token."""
        return self._generate(messages, max_tokens, temperature, stop, Completion(""))

    def _generate(
        self,
        messages: Sequence[Message],
        max_tokens: int,
        temperature: float,
        stop: Sequence[str] | None,
        done: Completion,
    ) -> Iterator[str]:
        """Yield pieces; fill `done` with token counts and the finish reason at the end."""
        if max_tokens < 1:
            raise ConfigError("max_tokens must be positive")
        ids = self.prompt_ids(messages, reserve=max_tokens)
        done.prompt_tokens, done.finish_reason = len(ids), "length"
        with self._lock:
            try:
                chunks = self._llm.create_completion(
                    ids,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_k=0 if temperature > 0 else 1,
                    stop=list(stop or []),
                    stream=True,
                )
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    # one chunk per token, and a closing chunk without text that carries
                    # only the finish reason
                    if choice.get("text") or not choice.get("finish_reason"):
                        done.completion_tokens += 1
                    if choice.get("finish_reason"):
                        done.finish_reason = choice["finish_reason"]
                    if choice.get("text"):
                        yield choice["text"]
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"llama.cpp model {self.name!r} failed: {exc}") from exc
            finally:
                self._record(done.prompt_tokens, done.completion_tokens)

    def _last_logits(self) -> Any:
        """Logits after the last evaluated token: llama-cpp-python keeps them only when
        built with logits_all, so they are read from the context itself."""
        import llama_cpp
        import numpy as np

        pointer = llama_cpp.llama_get_logits_ith(self._llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self._llm.n_vocab(),)).astype(np.float64)

    def candidate_token_ids(self, candidates: Sequence[str]) -> list[int]:
        ids = []
        for c in candidates:
            tokens = self._llm.tokenize(c.encode("utf-8"), add_bos=False, special=False)
            if not tokens:
                raise ConfigError(f"candidate {c!r} has no tokens")
            ids.append(tokens[0])
        return ids

    def next_token_logprobs(
        self, messages: Sequence[Message], candidates: Sequence[str]
    ) -> dict[str, float]:
        import numpy as np

        wanted = self.candidate_token_ids(candidates)
        ids = self.prompt_ids(messages, reserve=1)
        with self._lock:
            try:
                self._llm.reset()
                self._llm.eval(ids)
                logits = self._last_logits()
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"llama.cpp model {self.name!r} failed: {exc}") from exc
        self._record(len(ids), 0)
        top = logits.max()
        logz = top + np.log(np.exp(logits - top).sum())
        return {c: float(logits[t] - logz) for c, t in zip(candidates, wanted, strict=True)}
