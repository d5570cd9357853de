"""C2SP tlog-tiles, the pure part: paths, tile widths, bundles, and the root rebuilt from
hash tiles equal to RFC 9162's over the entries (hypothesis). The interop test against
Go's tile reader is tests/test_tiles_go.py."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cbmnet.errors import FormatError
from cbmnet.ledger.merkle import leaf_hash, root_hash, subtree_root
from cbmnet.ledger.tiles import (
    HEIGHT,
    WIDTH,
    encode_bundle,
    encode_index,
    parse_bundle,
    parse_tile_path,
    root_from_tiles,
    split_hash_tile,
    tile_path,
    tile_width,
    tiles_of,
)


def test_the_specs_own_example_of_an_index() -> None:
    # c2sp.org/tlog-tiles: "the index 1234067 is encoded as x001/x234/067"
    assert encode_index(1234067) == "x001/x234/067"
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(-1, 1234067, 8) == "tile/entries/x001/x234/067.p/8"
    assert encode_index(0) == "000" and encode_index(1000) == "x001/000"


@given(st.integers(-1, 7), st.integers(0, 2**56), st.integers(1, WIDTH))
def test_a_path_reads_back_as_what_it_names(level: int, index: int, width: int) -> None:
    assert parse_tile_path(tile_path(level, index, width)) == (level, index, width)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/x000/005",  # not canonical: a leading zero element
        "tile/0/05",
        "tile/8/000",  # no level 8
        "tile/0/000.p/256",  # a full tile is never partial
        "tile/0/000.p/0",
        "tile/0/000.p/007",
        "tile/0/x001",  # the last element has no x
        "tile/0/001/002",  # all but the last have one
        "tile/entries/",
        "tile/0/" + "x999/" * 7 + "999",  # beyond uint64
        "tiles/0/000",
        "tile/0/\u0660\u0660\u0661",  # digits, but not ASCII ones (Arabic-Indic)
        "tile/0/000.p/\u00b2",  # a superscript two: a digit to str.isdigit, not to int()
        "tile/\u00b2/000",
    ],
)
def test_every_other_spelling_is_refused_by_name(path: str) -> None:
    with pytest.raises(FormatError, match="tile"):
        parse_tile_path(path)


def _tiles(entries: list[bytes]) -> dict[tuple[int, int], list[bytes]]:
    """Hash tiles made the long way: node k at height 8L is the root of its 256^L leaves."""
    leaves = [leaf_hash(e) for e in entries]
    out: dict[tuple[int, int], list[bytes]] = {}
    for level, index, width in tiles_of(len(entries)):
        span = 1 << (HEIGHT * level)
        first = index * WIDTH
        out[(level, index)] = [
            subtree_root(leaves[k * span : (k + 1) * span]) for k in range(first, first + width)
        ]
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 70_000), st.integers(0, 2**32 - 1))
@example(size=2 * 65_536 + 257, seed=1)  # three levels, partial tiles on each
@example(size=65_536, seed=2)  # exactly one full level-1 tile
def test_the_root_from_the_tiles_is_the_trees_root(size: int, seed: int) -> None:
    entries = [seed.to_bytes(4, "big") + i.to_bytes(4, "big") for i in range(size)]
    assert root_from_tiles(size, _tiles(entries)) == root_hash(entries)


def test_a_missing_or_short_tile_is_named() -> None:
    entries = [i.to_bytes(2, "big") for i in range(300)]
    tiles = _tiles(entries)
    tiles[(0, 1)] = tiles[(0, 1)][:10]
    with pytest.raises(FormatError, match=r"tile/0/001 lacks node 10"):
        root_from_tiles(300, tiles)


def test_widths_grow_with_the_tree() -> None:
    assert tile_width(0, 0, 255) == 255 and tile_width(0, 0, 256) == WIDTH
    assert tile_width(0, 1, 256) == 0 and tile_width(1, 0, 256) == 1
    assert tile_width(1, 0, 65_536 * 3) == WIDTH and tile_width(2, 0, 65_536 * 3) == 3
    assert tile_width(-1, 2, 600) == 600 - 512
    assert tiles_of(0) == [] and tiles_of(257) == [(0, 0, 256), (0, 1, 1), (1, 0, 1)]


@given(st.lists(st.one_of(st.none(), st.binary(min_size=1, max_size=300)), min_size=1, max_size=WIDTH))
def test_a_bundle_reads_back_withheld_entries_as_none(entries: list[bytes | None]) -> None:
    assert parse_bundle(encode_bundle(entries), len(entries)) == entries


def test_an_entry_too_long_for_a_uint16_goes_withheld_and_a_bad_bundle_is_named() -> None:
    big = b"x" * 70_000
    assert parse_bundle(encode_bundle([b"a", big]), 2) == [b"a", None]
    with pytest.raises(FormatError, match="never empty"):
        encode_bundle([b""])
    good = encode_bundle([b"abc", b"de"])
    with pytest.raises(FormatError, match="runs past the end"):
        parse_bundle(good[:-1], 2)
    with pytest.raises(FormatError, match="not 3"):
        parse_bundle(good, 3)
    with pytest.raises(FormatError, match="more bytes than 1"):
        parse_bundle(good, 1)
    with pytest.raises(FormatError, match="has 64 bytes, not 63"):
        split_hash_tile(b"x" * 63, 2)
