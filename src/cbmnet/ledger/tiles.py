"""C2SP tlog-tiles (c2sp.org/tlog-tiles): the tree as static tiles, for monitors and mirrors.

A hash tile at level ``L``, index ``N`` holds the hashes of the tree's nodes at height
``8L``, indices ``256N`` to ``256N + W - 1`` (``W`` = 256 for a full tile, else a partial
tile ``.p/W``): every complete aligned subtree of ``2^(8L)`` leaves, which the store keeps
(``log_nodes``). Tiles of level 0 are the leaf hashes. An entry bundle ``entries/N``
holds the leaves' entries, each as a big-endian uint16 length and the entry bytes.

Two departures, both forced and both in docs/adr/0011-tiles.md:

* an entry the reader may not read is served as a zero-length entry: the hash tiles
  reveal nothing of it, and a real entry is never empty (it starts ``cbmnet/log-entry/v1``);
* so is an entry longer than 65,535 bytes, which the uint16 length cannot carry; the
  reader fetches it by index (``/v1/log/leaves``) and checks it against the level-0 tile.

Pure: paths, tile bytes and bundles in and out; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cbmnet.errors import FormatError
from cbmnet.ledger.merkle import EMPTY_ROOT, HASH_SIZE, fold_range, split_range, subtree_root

HEIGHT = 8
WIDTH = 1 << HEIGHT
"""Hashes (or entries) in a full tile: 256."""
MAX_LEVEL = 7
"""Tile levels 0..7 cover trees of up to 2^64 leaves."""
MAX_BUNDLE_ENTRY = 0xFFFF
MAX_INDEX_DIGITS = 21
"""Seven path elements of three digits: enough for any uint64 tile index."""


def encode_index(n: int) -> str:
    """``1234067`` -> ``x001/x234/067``: three-digit elements, all but the last ``x``-prefixed."""
    if n < 0:
        raise FormatError(f"tile index {n} is negative")
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def tile_path(level: int, index: int, width: int = WIDTH) -> str:
    """``tile/L/N[.p/W]``; level ``-1`` is the entry bundle ``tile/entries/N[.p/W]``."""
    if not -1 <= level <= MAX_LEVEL or not 1 <= width <= WIDTH:
        raise FormatError(f"no tile at level {level} of width {width}")
    head = "tile/entries" if level == -1 else f"tile/{level}"
    tail = "" if width == WIDTH else f".p/{width}"
    return f"{head}/{encode_index(index)}{tail}"


def parse_tile_path(path: str) -> tuple[int, int, int]:
    """``tile/L/N[.p/W]`` or ``tile/entries/N[.p/W]`` -> (level, index, width); level -1 for
    an entry bundle. Only the canonical spelling is accepted, so one tile has one name."""
    if len(path) > 128 or not path.startswith("tile/"):
        raise FormatError(f"not a tile path: {path[:128]!r}")
    parts = path.split("/")
    width = WIDTH
    if len(parts) >= 2 and parts[-2].endswith(".p"):
        w = parts[-1]
        if not (w.isascii() and w.isdigit()) or w != str(int(w)) or not 1 <= int(w) < WIDTH:
            raise FormatError(f"tile path {path!r}: a partial tile's width is 1 to 255")
        width = int(w)
        parts = [*parts[:-2], parts[-2].removesuffix(".p")]
    kind, groups = parts[1], parts[2:]
    if kind == "entries":
        level = -1
    elif kind.isascii() and kind.isdigit() and len(kind) == 1 and int(kind) <= MAX_LEVEL:
        level = int(kind)
    else:
        raise FormatError(f"tile path {path!r}: the level is 0 to {MAX_LEVEL} or 'entries'")
    if not groups or len(groups) * 3 > MAX_INDEX_DIGITS:
        raise FormatError(f"tile path {path!r}: no tile index")
    digits = [g.removeprefix("x") for g in groups[:-1]] + [groups[-1]]
    if not all(len(d) == 3 and d.isdigit() and d.isascii() for d in digits):
        raise FormatError(f"tile path {path!r}: the index is in three-digit elements")
    index = int("".join(digits))
    if tile_path(level, index, width) != path:
        raise FormatError(f"tile path {path!r} is not canonical: {tile_path(level, index, width)!r}")
    return level, index, width


def nodes_at(level: int, size: int) -> int:
    """How many hashes a tree of ``size`` leaves has at tile level ``level`` (height 8L)."""
    return size >> (HEIGHT * level)


def tile_width(level: int, index: int, size: int) -> int:
    """The width tile (``level``, ``index``) has in a tree of ``size``; 0 if it has none yet.
    Entry bundles (level -1) are as wide as level 0."""
    have = nodes_at(max(level, 0), size) - index * WIDTH
    return max(0, min(WIDTH, have))


def tiles_of(size: int) -> list[tuple[int, int, int]]:
    """Every hash tile (level, index, width) of a tree of ``size``, lowest level first."""
    out = []
    for level in range(MAX_LEVEL + 1):
        n = nodes_at(level, size)
        if n == 0:
            break
        out += [(level, i, min(WIDTH, n - i * WIDTH)) for i in range((n + WIDTH - 1) // WIDTH)]
    return out


def split_hash_tile(data: bytes, width: int) -> list[bytes]:
    """A hash tile's bytes as its ``width`` hashes."""
    if len(data) != width * HASH_SIZE:
        raise FormatError(f"a hash tile of width {width} has {width * HASH_SIZE} bytes, not {len(data)}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_bundle(entries: Iterable[bytes | None]) -> bytes:
    """An entry bundle; ``None`` (withheld) and entries too long for uint16 go as length 0."""
    out = bytearray()
    for e in entries:
        if e is None or len(e) > MAX_BUNDLE_ENTRY:
            out += b"\x00\x00"
        elif not e:
            raise FormatError("an entry is never empty")
        else:
            out += len(e).to_bytes(2, "big") + e
    return bytes(out)


def parse_bundle(data: bytes, width: int) -> list[bytes | None]:
    """An entry bundle's ``width`` entries; ``None`` where it carries none (length 0)."""
    out: list[bytes | None] = []
    at = 0
    while at < len(data):
        if len(out) == width or at + 2 > len(data):
            raise FormatError(f"entry bundle: more bytes than {width} entries")
        n = int.from_bytes(data[at : at + 2], "big")
        if at + 2 + n > len(data):
            raise FormatError(f"entry bundle: entry {len(out)} runs past the end")
        out.append(data[at + 2 : at + 2 + n] or None)
        at += 2 + n
    if len(out) != width:
        raise FormatError(f"entry bundle: {len(out)} entries, not {width}")
    return out


def root_from_tiles(size: int, tiles: dict[tuple[int, int], Sequence[bytes]]) -> bytes:
    """The tree's root from its hash tiles (``(level, index)`` -> hashes, as ``tiles_of``
    lists them): each of the tree's aligned complete subtrees is read from the highest tile
    level that holds it, then folded as RFC 9162 does."""
    if size == 0:
        return EMPTY_ROOT
    subtrees = []
    for height, idx in split_range(0, size):
        level = min(height // HEIGHT, MAX_LEVEL)
        below = height - HEIGHT * level  # levels still to hash inside the tile
        n = idx << below  # the first node at tile height covered by this subtree
        hashes = [_tile_hash(tiles, level, k) for k in range(n, n + (1 << below))]
        subtrees.append(subtree_root(hashes))
    return fold_range(subtrees)


def _tile_hash(tiles: dict[tuple[int, int], Sequence[bytes]], level: int, k: int) -> bytes:
    got = tiles.get((level, k // WIDTH))
    if got is None or k % WIDTH >= len(got):
        raise FormatError(f"hash tile {tile_path(level, k // WIDTH)} lacks node {k % WIDTH}")
    return got[k % WIDTH]
