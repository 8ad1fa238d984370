"""A local chat model through transformers: packaged SmolLM2 by default, any causal LM id or path.

Text-only: image parts of a message are dropped (their presence is noted in the prompt so
the model is not told about content it cannot see). Batched calls pad on the left so the
last position of every row is the row's real last token.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from mmrag.errors import ConfigError, ModelError
from mmrag.models.causal_lm import DEFAULT_LM, load_causal_lm
from mmrag.models.lm import Completion, LanguageModel, Message, Usage

# Tokens kept from the start of an over-long prompt (system prompt, instruction); the
# rest of the budget goes to its end, where the question sits.
_HEAD_TOKENS = 96


def text_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Messages with list-of-parts content flattened to its text parts."""
    out = []
    for m in messages:
        content = m.get("content", "")
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if p.get("type") == "text"]
            if len(texts) < len(content):
                texts.append("[an image was attached; this model cannot see images]")
            content = "\n".join(texts)
        out.append({"role": str(m.get("role", "user")), "content": str(content)})
    return out


def fit_window(ids: list[int], window: int, reserve: int) -> list[int]:
    """Prompt ids cut in the middle to leave `reserve` tokens of `window` for the reply."""
    room = window - reserve
    if room <= _HEAD_TOKENS * 2:
        raise ConfigError(
            f"max_tokens={reserve} leaves no room for a prompt in a {window}-token window"
        )
    if len(ids) > room:
        ids = ids[:_HEAD_TOKENS] + ids[len(ids) - (room - _HEAD_TOKENS) :]
    return ids


class LocalLM(LanguageModel):
    """A causal LM in this process. Thread-safe; `usage` counts every call."""

    def __init__(
        self,
        model: str = DEFAULT_LM,
        dtype: str = "float32",
        batch_size: int = 8,
        max_input_tokens: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        self.name = model
        self.usage = Usage()
        self.batch_size = batch_size
        self._lm = load_causal_lm(model, dtype)
        config_window = getattr(self._lm.model.config, "max_position_embeddings", 2048)
        self.window = int(max_input_tokens or config_window)
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> Any:
        return self._lm.tokenizer

    @property
    def model(self) -> Any:
        return self._lm.model

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: Sequence[Message], reserve: int = 0) -> list[int]:
        """Token ids of the chat prompt, cut in the middle if it would not fit the window."""
        tok = self.tokenizer
        msgs = text_messages(messages)
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        else:  # a base model without a template: plain turns
            text = "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant: "
        ids: list[int] = tok(text, add_special_tokens=False)["input_ids"]
        return fit_window(ids, self.window, reserve)

    def _record(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.usage.add(Completion("", prompt_tokens, completion_tokens))

    def _padded(self, rows: list[list[int]]) -> tuple[Any, Any]:
        import torch

        pad = self.tokenizer.pad_token_id
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
        return ids, mask

    def _generation_args(self, max_tokens: int, temperature: float) -> dict[str, Any]:
        if max_tokens < 1:
            raise ConfigError("max_tokens must be positive")
        args: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": temperature > 0,
        }
        if temperature > 0:
            args["temperature"] = temperature
        else:  # greedy: silence the sampling defaults some configs carry
            args.update(temperature=None, top_p=None, top_k=None)
        return args

    def chat(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> Completion:
        return self.chat_many([messages], max_tokens, temperature, stop)[0]

    def chat_many(
        self,
        conversations: Sequence[Sequence[Message]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> list[Completion]:
        import torch

        args = self._generation_args(max_tokens, temperature)
        prompts = [self.prompt_ids(c, reserve=max_tokens) for c in conversations]
        out: list[Completion] = []
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(prompts), self.batch_size):
            rows = prompts[start : start + self.batch_size]
            ids, mask = self._padded(rows)
            with torch.inference_mode():
                generated = self.model.generate(input_ids=ids, attention_mask=mask, **args)
            for row, new in zip(rows, generated[:, ids.shape[1] :].tolist(), strict=True):
                n = len(new)
                finish = "length"
                if eos in new:
                    n, finish = new.index(eos), "stop"
                text = self.tokenizer.decode(new[:n], skip_special_tokens=True)
                text, cut = _cut_at_stop(text, stop)
                if cut:
                    finish = "stop"
                out.append(Completion(text, len(row), n, finish))
                self._record(len(row), n)
        return out

    def next_token_logprobs(
        self, messages: Sequence[Message], candidates: Sequence[str]
    ) -> dict[str, float]:
        return self.next_token_logprobs_many([messages], candidates)[0]

    def candidate_token_ids(self, candidates: Sequence[str]) -> list[int]:
        """First token of each candidate as the reply's first token would spell it."""
        ids = []
        for c in candidates:
            tokens = self.tokenizer(c, add_special_tokens=False)["input_ids"]
            if not tokens:
                raise ConfigError(f"candidate {c!r} has no tokens")
            ids.append(tokens[0])
        return ids

    def next_token_logprobs_many(
        self, conversations: Sequence[Sequence[Message]], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        import torch

        wanted = torch.tensor(self.candidate_token_ids(candidates))
        prompts = [self.prompt_ids(c, reserve=1) for c in conversations]
        out: list[dict[str, float]] = []
        for start in range(0, len(prompts), self.batch_size):
            rows = prompts[start : start + self.batch_size]
            ids, mask = self._padded(rows)
            with torch.inference_mode():
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions
                ).logits[:, -1, :]
            logprobs = torch.log_softmax(logits.float(), dim=-1)[:, wanted].tolist()
            for row, values in zip(rows, logprobs, strict=True):
                out.append(dict(zip(candidates, values, strict=True)))
                self._record(len(row), 0)
        return out

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> Iterator[str]:
        """Pieces as generated; closing the iterator stops the model at its next token."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        args = self._generation_args(max_tokens, temperature)
        row = self.prompt_ids(messages, reserve=max_tokens)
        ids, mask = self._padded([row])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        halt = threading.Event()
        steps = [0]
        failure: list[BaseException] = []

        class _Halt(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                steps[0] += 1
                return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool)

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        input_ids=ids,
                        attention_mask=mask,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Halt()]),
                        **args,
                    )
            except BaseException as exc:  # surfaced in the caller's thread below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="mmrag-local-lm", daemon=True)
        worker.start()
        text = ""
        try:
            for piece in streamer:
                if stop:
                    text += piece
                    cut, hit = _cut_at_stop(text, stop)
                    if hit:
                        yield cut[len(text) - len(piece) :]
                        return
                if piece:
                    yield piece
            if failure:
                raise ModelError(f"local model {self.name!r} failed: {failure[0]}") from failure[0]
        finally:
            halt.set()
            worker.join()
            self._record(len(row), steps[0])


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    if not stop:
        return text, False
    cuts = [i for s in stop if s and (i := text.find(s)) >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)
