"""What a Milvus server can do, and the collections mmrag keeps on it.

Three kinds of server answer the same gRPC API and differ in features:

- Milvus Lite (the `milvus-lite` package, version string ``milvus_lite-X``): a Python
  re-implementation; BM25 functions, sparse vectors and hybrid search work; BM25
  statistics are per segment; only the ``standard`` and ``jieba`` tokenizers exist; BM25
  distances come back negated (smaller is better).
- Milvus 2.3 (the `milvus` package starts the real engine 2.3.5): dense search only. No
  sparse vectors (2.4), no hybrid search (2.4), no BM25 function (2.5), no `exists` on
  JSON keys (2.5); its HNSW misses neighbours (measured), so FLAT is the default there.
- Milvus >= 2.5: everything; the ``whitespace`` tokenizer arrives in 2.6.

One mmrag store is three collections: ``NAME`` (one row per document), ``NAME__sources``
(content hashes, for idempotent re-indexing) and ``NAME__meta`` (vector fields, encoders,
analyzer, BM25 parameters), because Milvus Lite does not keep collection descriptions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mmrag.errors import StoreError

FORMAT = 1
VEC = "vec_"  # prefix of a vector field's column
HAS = "has_"  # prefix of the bool column saying the document has that vector
SPARSE = "sparse"  # BM25 function output
TERMS = "terms"  # the analysed text the BM25 function reads
MAX_VARCHAR = 65535
ID_LEN = 1024
PATH_LEN = 4096
# Milvus caps top-k per search request at 16384.
MAX_TOPK = 16384
DOC_FIELDS = ["id", "source_id", "modality", "text", "source", "media", "span", "metadata"]
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class Capabilities:
    server: str  # the server's version string
    lite: bool  # Milvus Lite's Python engine, not the Milvus engine
    version: tuple[int, int, int]
    bm25: bool  # BM25 function on an analyzer-enabled VARCHAR field
    hybrid: bool  # hybrid_search with RRF / weighted rankers
    exists: bool  # the `exists` operator on JSON keys in filters
    multi_vector: bool  # several vector fields in one collection
    hnsw: bool  # HNSW finds the neighbours it should (not on Milvus 2.3.5, measured)
    bm25_negated: bool  # BM25 distances come back as -score
    tokenizer: str  # the tokenizer that keeps mmrag's pre-analysed terms whole

    def require(self, feature: str, uri: str) -> None:
        if not getattr(self, feature):
            needs = {
                "bm25": "BM25 search needs Milvus >= 2.5 or Milvus Lite",
                "hybrid": "hybrid search needs Milvus >= 2.4 or Milvus Lite",
                "multi_vector": "several vector fields need Milvus >= 2.4 or Milvus Lite",
            }[feature]
            raise StoreError(
                f"Milvus at {uri} is {self.server}: {needs} (the embedded store has them all)"
            )


def capabilities(server_version: str) -> Capabilities:
    """Features of a server, from the version string it reports."""
    lite = server_version.startswith("milvus_lite")
    if lite:
        return Capabilities(
            server_version, True, (2, 6, 0), True, True, True, True, True, True, "standard"
        )
    match = _VERSION.search(server_version)
    if match is None:
        raise StoreError(f"cannot read Milvus server version {server_version!r}")
    version = (int(match[1]), int(match[2]), int(match[3]))
    return Capabilities(
        server=server_version,
        lite=False,
        version=version,
        bm25=version >= (2, 5, 0),
        hybrid=version >= (2, 4, 0),
        exists=version >= (2, 5, 0),
        multi_vector=version >= (2, 4, 0),
        hnsw=version >= (2, 4, 0),
        bm25_negated=False,
        # Terms are already analysed (stemmed, CJK segmented): split on spaces only.
        # 2.5's standard tokenizer would also cut CJK words into characters.
        tokenizer="whitespace" if version >= (2, 6, 0) else "standard",
    )


def check_field_name(name: str) -> None:
    if not _FIELD_NAME.match(name):
        raise StoreError(
            f"vector field name {name!r} is not usable in Milvus "
            "(letters, digits and _, starting with a letter)"
        )


def _dummy_vector_schema(client: Any, schema: Any) -> None:
    from pymilvus import DataType

    # Milvus needs a vector field in every collection, even a key/value one.
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)


def meta_schema(client: Any) -> tuple[Any, Any]:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("value", DataType.VARCHAR, max_length=MAX_VARCHAR)
    _dummy_vector_schema(client, schema)
    index = client.prepare_index_params()
    index.add_index("_v", index_type="FLAT", metric_type="L2")
    return schema, index


def sources_schema(client: Any) -> tuple[Any, Any]:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False)
    schema.add_field("source_id", DataType.VARCHAR, max_length=ID_LEN, is_primary=True)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=256)
    schema.add_field("path", DataType.VARCHAR, max_length=PATH_LEN)
    schema.add_field("title", DataType.VARCHAR, max_length=PATH_LEN)
    schema.add_field("metadata", DataType.JSON)
    _dummy_vector_schema(client, schema)
    index = client.prepare_index_params()
    index.add_index("_v", index_type="FLAT", metric_type="L2")
    return schema, index


def chunks_schema(
    client: Any, meta: dict[str, Any], caps: Capabilities, dense_index: dict[str, Any]
) -> tuple[Any, Any]:
    """The documents collection for the vector fields and BM25 settings recorded in `meta`."""
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, max_length=ID_LEN, is_primary=True)
    schema.add_field("source_id", DataType.VARCHAR, max_length=ID_LEN)
    schema.add_field("modality", DataType.VARCHAR, max_length=16)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("source", DataType.VARCHAR, max_length=PATH_LEN)
    schema.add_field("media", DataType.VARCHAR, max_length=PATH_LEN)
    schema.add_field("span", DataType.JSON)
    schema.add_field("metadata", DataType.JSON)
    index = client.prepare_index_params()
    for name, info in meta["fields"].items():
        schema.add_field(HAS + name, DataType.BOOL)
        schema.add_field(VEC + name, DataType.FLOAT_VECTOR, dim=int(info["dim"]))
        index.add_index(
            VEC + name,
            index_type=dense_index["index_type"],
            metric_type="IP",
            params=_wire_params(dense_index.get("params", {})),
        )
    if meta.get("bm25"):
        schema.add_field(
            TERMS,
            DataType.VARCHAR,
            max_length=MAX_VARCHAR,
            enable_analyzer=True,
            analyzer_params={"tokenizer": meta["bm25"]["tokenizer"]},
        )
        schema.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=[TERMS],
                output_field_names=[SPARSE],
            )
        )
        index.add_index(
            SPARSE,
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params=_wire_params({"bm25_k1": meta["bm25"]["k1"], "bm25_b": meta["bm25"]["b"]}),
        )
    if not meta["fields"] and not meta.get("bm25"):
        raise StoreError("a Milvus collection needs a vector field or BM25 (declare a field)")
    return schema, index


def _wire_params(params: dict[str, Any]) -> dict[str, Any]:
    """Index build parameters as one JSON "params" entry: the wire format every server
    reads. pymilvus 3 otherwise sends them as separate keys, which Milvus Lite ignores
    (it would build BM25 with its default k1 = 1.5)."""
    return {"params": params} if params else {}


def expected_columns(meta: dict[str, Any]) -> dict[str, int | None]:
    """Column name -> vector dimension (None for scalars) that `chunks_schema` creates."""
    cols: dict[str, int | None] = dict.fromkeys(DOC_FIELDS)
    for name, info in meta["fields"].items():
        cols[HAS + name] = None
        cols[VEC + name] = int(info["dim"])
    if meta.get("bm25"):
        cols[TERMS] = None
        cols[SPARSE] = None
    return cols


def schema_problems(description: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """How an existing collection differs from what mmrag's metadata says it should be."""
    found: dict[str, int | None] = {}
    for f in description.get("fields", []):
        dim = f.get("params", {}).get("dim")
        found[f["name"]] = int(dim) if dim is not None else None
    want = expected_columns(meta)
    problems = [f"missing column {c!r}" for c in want if c not in found]
    problems += [f"unexpected column {c!r}" for c in found if c not in want]
    problems += [
        f"column {c!r} has dimension {found[c]}, expected {d}"
        for c, d in want.items()
        if d is not None and c in found and found[c] != d
    ]
    return problems
