"""Hypothesis strategies that damage real files: byte flips, truncation, insertions,
deleted or repeated ranges, splices of two seeds, invalid UTF-8 and NUL bytes.

A structure-blind mutator, as AFL's havoc stage is: most mutants are rejected early,
but the ones that survive the header checks reach the decoders' deeper paths.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

# Invalid or awkward UTF-8: a lone continuation byte, a truncated sequence, an encoded
# surrogate, an overlong NUL, a byte never valid in UTF-8, a lone UTF-16 BOM half.
BAD_UTF8 = (b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xc0\x80", b"\xff", b"\xfe", b"\x00")


@st.composite
def _mutation(draw: st.DrawFn, data: bytes, seeds: Sequence[bytes]) -> bytes:
    n = len(data)
    op = draw(st.sampled_from(["flip", "byte", "truncate", "insert", "delete", "repeat",
                               "splice", "utf8"]))  # fmt: skip
    pos = draw(st.integers(0, max(n - 1, 0)))
    if op == "flip" and n:
        return data[:pos] + bytes([data[pos] ^ (1 << draw(st.integers(0, 7)))]) + data[pos + 1 :]
    if op == "byte" and n:
        value = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x20, 0x3C, 0x7B, 0x22]))
        return data[:pos] + bytes([value]) + data[pos + 1 :]
    if op == "truncate":
        return data[:pos]
    if op == "insert":
        return data[:pos] + draw(st.binary(min_size=1, max_size=16)) + data[pos:]
    if op == "delete":
        return data[:pos] + data[pos + draw(st.integers(1, 64)) :]
    if op == "repeat":
        piece = data[pos : pos + draw(st.integers(1, 64))]
        return data[:pos] + piece * draw(st.integers(2, 8)) + data[pos:]
    if op == "splice":
        other = draw(st.sampled_from(list(seeds)))
        return data[:pos] + other[draw(st.integers(0, max(len(other) - 1, 0))) :]
    return data[:pos] + draw(st.sampled_from(BAD_UTF8)) + data[pos:]


@st.composite
def mutants(draw: st.DrawFn, seeds: Sequence[bytes], max_mutations: int = 4) -> bytes:
    """A seed with 0..max_mutations mutations applied in turn (0: the seed itself)."""
    data = draw(st.sampled_from(list(seeds)))
    for _ in range(draw(st.integers(0, max_mutations))):
        data = draw(_mutation(data, seeds))
    return data
