"""What `mmrag serve` is configured with; every limit has a safe default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Settings for one server over one store.

    `api_key` None means no authentication (bind to loopback then). `timeout` bounds
    every request in seconds, a streamed answer included; `max_upload_bytes` bounds one
    upload request as a whole, `max_request_bytes` any other request body (JSON).
    `max_query_chars` is where a search query is cut, at a word boundary: far past what
    an encoder reads (512 tokens), it bounds what BM25 scores (every distinct term costs
    its posting list) and what one search holds the store for. `search_k_max` bounds k.
    `generation_slots` is how many answers are generated at once; more wait their turn
    (a local model on a few cores gains nothing from more). `search_workers` is how many
    search batches of one retriever run at once (None: one per core).
    """

    store: str | Path  # a folder (the embedded store) or a milvus://host:port/collection URI
    config: Path | None = None
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_upload_bytes: int = 50 * 1024 * 1024
    max_request_bytes: int = 1024 * 1024
    max_query_chars: int = 8192
    timeout: float = 120.0
    read_only: bool = False
    dense: bool = True  # embed uploads (if the store has no vector field yet)
    model_id: str = "mmrag"  # the model name /v1/models advertises
    generation_slots: int = 1
    search_k_max: int = 100
    search_workers: int | None = None
