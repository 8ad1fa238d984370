"""A real store of examples/corpus (MiniLM vectors + BM25), built once into the cache and
copied for each test module that needs its own writable store."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.models.text import load_text_encoder

CORPUS = Path(__file__).resolve().parents[1] / "examples" / "corpus"


def corpus_store(cache_dir: Path, dest: Path) -> Path:
    """Copy of the cached examples/corpus store at `dest` (built or refreshed first)."""
    # sources are keyed by absolute path: another checkout sharing the cache gets its own
    checkout = hashlib.sha256(str(CORPUS).encode()).hexdigest()[:8]
    cached = cache_dir / "test-stores" / f"examples-corpus-minilm-{checkout}"
    with EmbeddedStore(cached) as store:
        # Re-indexing skips unchanged files, so this is cheap after the first run.
        Indexer(store, load_text_encoder("sentence-transformers"), progress=False).index_paths(
            [CORPUS], prune=True
        )
    shutil.copytree(cached, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest
