"""The filter language, fuzzed: any dict (from a server request) or CLI text either
filters a real store or is refused with ConfigError, never a crash or an SQLite error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmrag.errors import ConfigError
from mmrag.index.bm25 import BM25Params
from mmrag.index.filters import MAX_DEPTH, parse_filter_arg, to_sql
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from tests.corpus_store import CORPUS

OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$and", "$or"]
KEYS = ["modality", "source_id", "source", "id", "suffix", "pages", "section", "a.b", "_x"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["text", "pdf", ".md", "image"])
)
names = st.sampled_from(KEYS + OPERATORS) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=3),
    max_leaves=25,
)
filters = st.dictionaries(names, values, max_size=3)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with EmbeddedStore(tmp_path_factory.mktemp("filters") / "store") as store:
        Indexer(store, None, progress=False).index_paths([CORPUS])
        yield store


@settings(max_examples=400)
@given(filters)
def test_any_filter_dict_filters_or_is_refused(store, f):
    try:
        rows = store.filter_rows(f)
        found = store.search_sparse(["water"], 3, BM25Params(), f)
    except ConfigError as exc:
        assert str(exc)
        return
    assert rows is None or len(rows) <= len(store)
    assert len(found[0]) <= 3


@settings(max_examples=300)
@given(st.text(max_size=60) | st.builds(json.dumps, filters))
def test_any_cli_filter_text_parses_or_is_refused(text):
    try:
        parsed = parse_filter_arg(text)
        if parsed:
            to_sql(parsed)
    except ConfigError as exc:
        assert str(exc)


def _nested(depth: int) -> dict:
    f: dict = {"suffix": ".md"}
    for _ in range(depth):
        f = {"$and": [f]}
    return f


def test_a_deep_filter_is_refused_before_it_recurses(store):
    """Found by the fuzzer: 5,000 levels of $and raised RecursionError; 400 gave SQLite's
    'Expression tree is too large'."""
    for depth in (400, 5000):
        with pytest.raises(ConfigError, match="nested too deeply"):
            store.filter_rows(_nested(depth))
    assert len(store.filter_rows(_nested(MAX_DEPTH // 2 - 1))) > 0
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_filter_arg('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"pages": 2**70}, "64-bit"),  # was OverflowError from sqlite3
        ({"pages": {}}, "empty condition"),  # was an SQL syntax error: "()"
        ({"pages": {"$exists": "yes"}}, "true or false"),
        ({"suffix": {"$in": list(range(5000))}}, "over 1000 values"),  # SQLite's variable limit
    ],
)
def test_bad_filters_are_refused_with_a_reason(store, bad, says):
    with pytest.raises(ConfigError, match=says):
        store.filter_rows(bad)
