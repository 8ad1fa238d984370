"""Indexing: the layer above ingest/ (files -> documents) and index/ (documents -> store).

    config = config_of(store).replace(ocr="never")   # what the store was indexed with
    build_indexer(store, config).index_paths(["photos/"])
    store.set_index_config(config.to_dict())

`IndexConfig` (config.py) holds every choice of `mmrag index`; `build_indexer` (build.py)
turns one into an `Indexer` (indexer.py) with its own loaders and embedders; the Ray
engine (ray_engine.py) runs the same config on Ray Data.
"""

from mmrag.indexing.build import build_indexer, has_visual_files
from mmrag.indexing.config import IndexConfig, config_of
from mmrag.indexing.indexer import Indexer, IndexReport

__all__ = [
    "IndexConfig",
    "IndexReport",
    "Indexer",
    "build_indexer",
    "config_of",
    "has_visual_files",
]
