"""Any OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp server, hosted APIs, mmrag itself).

Retries cover what a retry can fix (connection errors, timeouts, 429 and 5xx); other
errors surface at once as `ModelError` with the endpoint's own message. A semaphore
bounds concurrent requests across every thread using this instance.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mmrag.errors import ConfigError, MissingDependency, ModelError
from mmrag.models.lm import Completion, LanguageModel, Message, Usage

_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAICompatibleLM(LanguageModel):
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        concurrency: int = 4,
        backoff: float = 0.5,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ConfigError("an OpenAI-compatible endpoint needs a model name")
        if timeout <= 0 or retries < 0 or concurrency < 1:
            raise ConfigError("timeout must be > 0, retries >= 0 and concurrency >= 1")
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx is a core dependency
            raise MissingDependency("pip install httpx") from exc
        self.name = model
        self.base_url = base_url.rstrip("/")
        self.usage = Usage()
        self.retries = retries
        self.backoff = backoff
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout))

    def close(self) -> None:
        self._client.close()

    def _body(
        self,
        messages: Sequence[Message],
        max_tokens: int,
        temperature: float,
        stop: Sequence[str] | None,
        **extra: Any,
    ) -> dict[str, Any]:
        if max_tokens < 1:
            raise ConfigError("max_tokens must be positive")
        body: dict[str, Any] = {
            "model": self.name,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if stop:
            body["stop"] = list(stop)
        body.update(extra)
        return body

    def _fail(self, what: str) -> ModelError:
        with self._lock:
            self.usage.errors.append(what)
        return ModelError(f"{self.base_url}: {what}")

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        last = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                with self._slots:
                    r = self._client.post(f"{self.base_url}/chat/completions", json=body)
            except httpx.TimeoutException:
                last = "timed out"
                continue
            except httpx.TransportError as exc:
                last = f"unreachable ({exc})"
                continue
            if r.status_code in _RETRYABLE:
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                continue
            if r.status_code >= 400:
                raise self._fail(f"HTTP {r.status_code}: {r.text[:300]}")
            try:
                return r.json()
            except ValueError:
                raise self._fail(f"answered with non-JSON: {r.text[:200]!r}") from None
        raise self._fail(f"{last} after {self.retries + 1} attempt(s)")

    def _record(self, completion: Completion) -> Completion:
        with self._lock:
            self.usage.add(completion)
        return completion

    def chat(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> Completion:
        data = self._post(self._body(messages, max_tokens, temperature, stop))
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._fail(f"reply has no choices[0].message: {str(data)[:200]}") from None
        usage = data.get("usage") or {}
        return self._record(
            Completion(
                text,
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
                choice.get("finish_reason") or "stop",
            )
        )

    def chat_many(
        self,
        conversations: Sequence[Sequence[Message]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> list[Completion]:
        if len(conversations) <= 1:
            return [self.chat(c, max_tokens, temperature, stop) for c in conversations]
        with ThreadPoolExecutor(min(self.concurrency, len(conversations))) as pool:
            return list(
                pool.map(lambda c: self.chat(c, max_tokens, temperature, stop), conversations)
            )

    def next_token_logprobs(
        self, messages: Sequence[Message], candidates: Sequence[str]
    ) -> dict[str, float]:
        """From the endpoint's `top_logprobs` of the first reply token.

        A candidate absent from the top 20 gets a value below every listed one, so
        rankings stay complete; endpoints without logprobs raise `ModelError`.
        """
        body = self._body(messages, 1, 0.0, None, logprobs=True, top_logprobs=20)
        data = self._post(body)
        try:
            first = data["choices"][0]["logprobs"]["content"][0]
            listed = {t["token"]: float(t["logprob"]) for t in first["top_logprobs"]}
        except (KeyError, IndexError, TypeError):
            raise self._fail("endpoint returned no logprobs (it may not support them)") from None
        usage = data.get("usage") or {}
        self._record(Completion("", int(usage.get("prompt_tokens") or 0), 1))
        floor = min(listed.values(), default=0.0) - math.log(2)
        out = {}
        for c in candidates:
            matches = [v for tok, v in listed.items() if tok.strip() and c.startswith(tok.strip())]
            out[c] = max(matches) if matches else floor
        return out

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> Iterator[str]:
        """Server-sent chunks; closing the iterator closes the connection."""
        import httpx

        body = self._body(
            messages,
            max_tokens,
            temperature,
            stop,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces = 0
        usage: dict[str, Any] = {}
        with self._slots:
            try:
                with self._client.stream(
                    "POST", f"{self.base_url}/chat/completions", json=body
                ) as r:
                    if r.status_code >= 400:
                        r.read()
                        raise self._fail(f"HTTP {r.status_code}: {r.text[:300]}")
                    for line in r.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            break
                        try:
                            chunk = json.loads(payload)
                        except ValueError:
                            raise self._fail(f"bad stream chunk: {payload[:200]!r}") from None
                        usage = chunk.get("usage") or usage
                        for choice in chunk.get("choices") or []:
                            piece = (choice.get("delta") or {}).get("content")
                            if piece:
                                pieces += 1
                                yield piece
            except httpx.TimeoutException:
                raise self._fail("timed out while streaming") from None
            except httpx.TransportError as exc:
                raise self._fail(f"connection lost while streaming ({exc})") from None
            finally:
                self._record(
                    Completion(
                        "",
                        int(usage.get("prompt_tokens") or 0),
                        int(usage.get("completion_tokens") or pieces),
                    )
                )
