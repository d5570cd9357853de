"""Small numpy tools the readers and the reconciliation share: grouping and string hashing.

Everything here works on whole arrays, so 50 million rows cost a handful of array passes
and no Python object per row. Integer arithmetic only where results must not depend on
the order rows arrive in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
U64 = NDArray[np.uint64]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_BASE = np.uint64(0x100000001B3)  # the FNV prime: odd, so powers never collapse to 0


def mix64(x: U64) -> U64:
    """splitmix64's finaliser: spreads every input bit over the whole word."""
    with np.errstate(over="ignore"):
        z = (x + _GOLD).astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return (z ^ (z >> np.uint64(31))).astype(np.uint64)


def hash_strings(offsets: NDArray[Any], data: NDArray[np.uint8]) -> U64:
    """A 64-bit hash of each string given Arrow-style ``offsets`` (n + 1) into ``data`` bytes.

    A polynomial hash over the bytes (mod 2^64, wrapping) then a finaliser. Equal strings
    always hash equal; unequal ones collide with probability about 2^-64 for strings up to
    the 256 bytes the readers allow (the Thue-Morse weakness of mod-2^64 polynomials needs
    strings of thousands of bytes). The empty string hashes to 0, which callers use as
    "none".
    """
    off = np.asarray(offsets, dtype=np.int64)
    n = len(off) - 1
    out = np.zeros(n, dtype=np.uint64)
    if n <= 0:
        return out
    lens = np.diff(off)
    total = int(off[-1] - off[0])
    if total == 0:
        return out
    seg = data[int(off[0]) : int(off[-1])].astype(np.uint64) + np.uint64(1)
    starts = off[:-1] - off[0]
    pos = np.arange(total, dtype=np.int64) - np.repeat(starts, lens)
    maxlen = int(lens.max())
    powers = np.empty(maxlen, dtype=np.uint64)
    powers[0] = 1
    with np.errstate(over="ignore"):
        for k in range(1, maxlen):  # at most 256 steps: the readers cap string length
            powers[k] = powers[k - 1] * _BASE
        terms = seg * powers[pos]
    nonempty = lens > 0
    sums = np.add.reduceat(terms, starts[nonempty]) if nonempty.any() else out[:0]
    out[nonempty] = mix64(sums ^ (lens[nonempty].astype(np.uint64) * _GOLD))
    out[nonempty & (out == 0)] = 1  # 0 is reserved for the empty string
    return out


def group_index(cols: Sequence[NDArray[Any]]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Rows with equal values in every column share a group number.

    Returns ``(inverse, first)``: each row's group (groups numbered in lexicographic order
    of the columns, so the numbering does not depend on row order) and one row of each
    group. Non-negative integer columns are packed into one int64 key when their ranges
    fit in 63 bits (one sort), otherwise sorted with ``lexsort``.
    """
    n = len(cols[0])
    if n == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    shifted: list[NDArray[np.int64]] = []
    bits = 0
    widths: list[int] = []
    for c in cols:
        c64 = np.asarray(c).astype(np.int64, copy=False)
        lo = int(c64.min())
        span = int(c64.max()) - lo + 1
        w = max(1, span.bit_length())
        widths.append(w)
        bits += w
        shifted.append(c64 - lo)
    if bits <= 63:
        key = np.zeros(n, dtype=np.int64)
        for c64, w in zip(shifted, widths, strict=True):
            key = (key << np.int64(w)) | c64
        uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        del uniq
        return inverse.astype(np.intp, copy=False), first.astype(np.intp, copy=False)
    order = np.lexsort(tuple(reversed(shifted)))
    sorted_cols = [c[order] for c in shifted]
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for c in sorted_cols:
        change[1:] |= c[1:] != c[:-1]
    gid_sorted = np.cumsum(change) - 1
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = gid_sorted
    first = order[np.flatnonzero(change)]
    return inverse, first.astype(np.intp, copy=False)


def _sort_key(cols: Sequence[NDArray[Any]]) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """An order that brings equal rows (over ``cols``) together, and where groups start."""
    n = len(cols[0])
    shifted: list[NDArray[np.int64]] = []
    bits = 0
    widths: list[int] = []
    for c in cols:
        c64 = np.asarray(c).astype(np.int64, copy=False)
        lo = int(c64.min())
        w = max(1, (int(c64.max()) - lo + 1).bit_length())
        widths.append(w)
        bits += w
        shifted.append(c64 - lo)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    if bits > 63:
        order = np.lexsort(tuple(reversed(shifted))).astype(np.intp, copy=False)
        for c64 in shifted:
            cs = c64[order]
            change[1:] |= cs[1:] != cs[:-1]
        return order, change
    key = shifted[0] if len(shifted) == 1 else np.zeros(n, dtype=np.int64)
    if len(shifted) > 1:
        for c64, w in zip(shifted, widths, strict=True):
            key = (key << np.int64(w)) | c64
    order = np.argsort(key).astype(np.intp, copy=False)
    ks = key[order]
    change[1:] = ks[1:] != ks[:-1]
    return order, change


def reduce_by(cols: Sequence[NDArray[Any]], values: I64, how: str) -> tuple[NDArray[np.intp], I64]:
    """Sum (``how="sum"``) or max of ``values`` over rows equal in every column.

    Returns one representative row per group and the group's result, in an order that
    depends only on the data. One sort, then ``reduceat``: no scatter.
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int64)
    order, change = _sort_key(cols)
    starts = np.flatnonzero(change)
    v = values[order]
    red = np.add.reduceat(v, starts) if how == "sum" else np.maximum.reduceat(v, starts)
    return order[starts], red.astype(np.int64, copy=False)


def group_sum(inverse: NDArray[np.intp], values: I64, n_groups: int) -> I64:
    """Exact int64 sums per group (integer sums do not depend on the order of rows)."""
    out = np.zeros(n_groups, dtype=np.int64)
    np.add.at(out, inverse, values)
    return out


def group_max(inverse: NDArray[np.intp], values: I64, n_groups: int) -> I64:
    out = np.full(n_groups, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(out, inverse, values)
    return out
