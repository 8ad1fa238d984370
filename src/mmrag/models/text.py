"""Text encoders: texts in, L2-normalised float32 vectors out.

Every encoder says what it is (`info()`), and a store keeps that record so vectors from
two different models are never mixed in one field. Loaded models are cached per
process, so building several encoders over the same model costs one load.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from mmrag.errors import ConfigError
from mmrag.models.resolve import loading, resolve_model
from mmrag.progress import progress as progress_bar
from mmrag.registry import Registry, require


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))


def _as_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts; wrap a single text in a list")
    out = list(texts)
    for t in out:
        if not isinstance(t, str):
            raise TypeError(f"encode() takes strings, got {type(t).__name__}")
    return out


class TextEncoder(ABC):
    """Embeds texts into one vector space: `encode` documents, `encode_queries` queries."""

    kind: ClassVar[str]  # the registry name; with `name` it identifies the vector space
    name: str
    dim: int
    max_tokens: int | None = None

    @abstractmethod
    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit length."""

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.encode(texts, batch_size=batch_size)

    def info(self) -> dict[str, Any]:
        # "model" (not "name") because stores and retrievers rebuild the encoder with
        # load_text_encoder(info["kind"], model=info["model"]).
        return {"kind": self.kind, "model": self.name, "dim": self.dim}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dim={self.dim})"


def encode_sorted(
    texts: list[str],
    dim: int,
    run: Callable[[list[str]], np.ndarray],
    chunk: int,
    progress: bool,
    label: str,
) -> np.ndarray:
    """Encode in chunks of similar length (less padding), keeping the caller's order."""
    if chunk < 1:
        raise ConfigError(f"batch_size must be at least 1, got {chunk}")
    out = np.empty((len(texts), dim), dtype=np.float32)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    with progress_bar(progress and len(texts) > 0) as bar:
        task = bar.add_task(label, total=len(texts))
        for start in range(0, len(texts), chunk):
            idx = order[start : start + chunk]
            out[idx] = normalise(run([texts[i] for i in idx]))
            bar.advance(task, len(idx))
    return out


# ---- sentence-transformers --------------------------------------------------------


@lru_cache(maxsize=4)
def _sentence_transformer(path: str, device: str, max_tokens: int | None) -> Any:
    sentence_transformers = require("sentence_transformers", "torch")

    model = sentence_transformers.SentenceTransformer(path, device=device)
    model.eval()
    if max_tokens is not None:
        model.max_seq_length = max_tokens
    return model


@lru_cache(maxsize=1)
def _default_torch_threads() -> int:
    """torch's own choice (one per core), read before anything changes it."""
    torch = require("torch", "torch")

    return int(torch.get_num_threads())


class SentenceTransformerEncoder(TextEncoder):
    """Any sentence-transformers model: a packaged name, a local path, or a hub id.

    If the model defines query / document prompts (E5, BGE, ...) they are applied.

    `query_threads` (default 1) is torch's intra-op thread count for queries, `threads`
    for documents (None: torch's default, one per core). A short query on two threads
    spends most of its time with one thread spin-waiting for a core another process
    holds: with one core kept busy, MiniLM took 31.6 ms p50 / 127 ms p95 per query on
    two threads against 19.3 / 26.5 ms on one (bench/query_latency.py). torch's count
    is per process, so it is set before every call.
    """

    kind = "sentence-transformers"

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        device: str = "cpu",
        max_tokens: int | None = None,
        threads: int | None = None,
        query_threads: int = 1,
    ) -> None:
        if max_tokens is not None and max_tokens <= 0:
            raise ConfigError(f"max_tokens must be positive, got {max_tokens}")
        for what, n in (("threads", threads), ("query_threads", query_threads)):
            if n is not None and (not isinstance(n, int) or n < 1):
                raise ConfigError(f"{what} must be a positive integer, got {n!r}")
        self.threads, self.query_threads = threads, query_threads
        _default_torch_threads()  # before any call of ours changes it
        self.name = model
        self.device = device
        path = resolve_model(model)
        with loading(model, path):
            self._model = _sentence_transformer(path, device, max_tokens)
        dim = self._model.get_embedding_dimension()
        if not dim:
            raise ConfigError(f"model {model!r} does not declare an embedding dimension")
        self.dim = int(dim)
        self.max_tokens = self._model.max_seq_length
        prompts = {k: v for k, v in (self._model.prompts or {}).items() if v}
        self._query_prompt: str | None = prompts.get("query")
        self._doc_prompt: str | None = next(
            (prompts[k] for k in ("document", "passage", "corpus") if k in prompts), None
        )

    def _run(
        self, texts: list[str], batch_size: int, prompt: str | None, threads: int | None
    ) -> np.ndarray:
        import torch

        wanted = threads or _default_torch_threads()
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)
        with torch.inference_mode():
            return self._model.encode(
                texts,
                prompt=prompt,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

    def _encode(
        self,
        texts: Sequence[str],
        batch_size: int,
        progress: bool,
        prompt: str | None,
        threads: int | None,
    ) -> np.ndarray:
        items = _as_texts(texts)
        # Sorting the whole input by length keeps each batch tightly padded even though
        # we call the model chunk by chunk to drive the progress bar.
        return encode_sorted(
            items,
            self.dim,
            lambda part: self._run(part, batch_size, prompt, threads),
            chunk=batch_size * 8,
            progress=progress,
            label=f"encoding with {self.name}",
        )

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        return self._encode(texts, batch_size, progress, self._doc_prompt, self.threads)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._encode(texts, batch_size, False, self._query_prompt, self.query_threads)


# ---- Universal Sentence Encoder, multilingual (ONNX) -------------------------------


@lru_cache(maxsize=2)
def _onnx_session(path: str) -> Any:
    import onnxruntime as ort
    from onnxruntime_extensions import get_library_path

    options = ort.SessionOptions()
    # The graph tokenises strings itself with SentencePiece ops from onnxruntime-extensions.
    options.register_custom_ops_library(get_library_path())
    try:
        return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, unrelated exception types
        raise ConfigError(f"cannot load ONNX model {path}: {exc}") from exc


class USEMultilingualEncoder(TextEncoder):
    """Universal Sentence Encoder multilingual (16 languages incl. Chinese), ONNX, 512-d.

    The graph takes raw strings (tokenisation is inside it), so there is no token limit
    to configure here.
    """

    kind = "use-multilingual"

    def __init__(self, model: str = "use-multilingual") -> None:
        self.name = model
        self._session = _onnx_session(resolve_model(model))
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(string)":
            raise ConfigError(f"{model!r} is not a string-input sentence encoder")
        self._input = inputs[0].name
        self._output = outputs[0].name
        dim = outputs[0].shape[-1]
        if not isinstance(dim, int):
            raise ConfigError(f"{model!r} does not declare its embedding dimension")
        self.dim = dim
        self.max_tokens = None

    def _run(self, texts: list[str]) -> np.ndarray:
        # One text per call: the graph pads a batch to its longest text and the padding
        # shifts the other embeddings (cosine down to 0.998 on SciFact abstracts), so a
        # vector would depend on its batch neighbours. Batching gains little here anyway
        # (abstracts: 94 vs 80 texts/s).
        return np.vstack(
            [
                self._session.run([self._output], {self._input: np.asarray([t], dtype=object)})[0]
                for t in texts
            ]
        )

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """`batch_size` only sets how often the progress bar moves (see `_run`)."""
        return encode_sorted(
            _as_texts(texts),
            self.dim,
            self._run,
            chunk=batch_size,
            progress=progress,
            label=f"encoding with {self.name}",
        )


TEXT_ENCODERS: Registry[TextEncoder] = Registry(
    "text encoder",
    {
        "sentence-transformers": "mmrag.models.text:SentenceTransformerEncoder",
        "use-multilingual": "mmrag.models.text:USEMultilingualEncoder",
        "onnx": "mmrag.models.onnx_text:OnnxTextEncoder",
    },
)


def load_text_encoder(name: str = "sentence-transformers", **params: Any) -> TextEncoder:
    """A text encoder by registry name (or "module:Class"), e.g. ("use-multilingual")."""
    return TEXT_ENCODERS.create(name, **params)
