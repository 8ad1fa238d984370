"""Ingestion: files -> `SourceFile`s (loaders per suffix) -> chunked `Document`s with spans.

sources, errors = scan([Path("examples/corpus")])
docs = [d for s in sources for d in chunk_documents(s, max_tokens=256, overlap=32)]
"""

from mmrag.ingest.chunking import TokenCounter, chunk_documents, chunk_spans
from mmrag.ingest.files import (
    LOADERS,
    ConfiguredLoader,
    ContentKind,
    Loaded,
    Loader,
    LoaderTable,
    RawFile,
    Section,
    SourceFile,
    iter_files,
    load,
    load_source,
    loader_entries,
    register_loader,
    scan,
    sniff,
    supported_suffixes,
)

__all__ = [
    "LOADERS",
    "ConfiguredLoader",
    "ContentKind",
    "Loaded",
    "Loader",
    "LoaderTable",
    "RawFile",
    "Section",
    "SourceFile",
    "TokenCounter",
    "chunk_documents",
    "chunk_spans",
    "iter_files",
    "load",
    "load_source",
    "loader_entries",
    "register_loader",
    "scan",
    "sniff",
    "supported_suffixes",
]
