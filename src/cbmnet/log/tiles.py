"""C2SP tlog-tiles read from a store: what the hub and a national mirror both serve.

The bytes are ``ledger/tiles.py``'s; this module reads the stored complete-subtree hashes
and entries behind them. Who may read an entry is the caller's to say (``readable``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cbmnet.errors import NotFoundError
from cbmnet.ledger.entry import encode_entry
from cbmnet.ledger.tiles import HEIGHT, WIDTH, encode_bundle, tile_width
from cbmnet.store.sql import Store


def _available(size: int, level: int, index: int, width: int) -> None:
    have = tile_width(level, index, size)
    if have < width:
        name = "entries" if level < 0 else str(level)
        raise NotFoundError(f"tile {name}/{index}: the log holds {have} of its {width} hashes")


def hash_tile(store: Store, size: int, level: int, index: int, width: int) -> bytes:
    """The hash tile (``level``, ``index``) of ``width`` of a tree of ``size`` in ``store``."""
    _available(size, level, index, width)
    first = index * WIDTH
    got = store.nodes_at_level(HEIGHT * level, first, first + width)
    if len(got) != width:
        raise NotFoundError(f"tile {level}/{index}: {width - len(got)} node(s) missing from the store")
    return b"".join(got[first + k] for k in range(width))


def entry_bundle(
    store: Store,
    size: int,
    index: int,
    width: int,
    readable: Callable[[Iterable[int]], set[int]],
) -> bytes:
    """The entry bundle ``index`` of ``width``: the entries ``readable`` returns of the
    indices it is given; every other slot zero-length (ADR 0011)."""
    _available(size, -1, index, width)
    first = index * WIDTH
    rows = []
    for r in store.iter_entries(after=first - 1, chunk=width):  # one SELECT of ``width`` rows
        if r.idx >= first + width:
            break
        rows.append(r)
        if len(rows) == width:
            break
    may = readable([r.idx for r in rows])
    by_index = {r.idx: encode_entry(r.integrated_ms, r.envelope) for r in rows if r.idx in may}
    return encode_bundle(by_index.get(i) for i in range(first, first + width))
