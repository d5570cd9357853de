"""RFC 9162 hashing and proofs: peer reference hashes, then properties."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cbmnet.errors import FormatError, VerificationError
from cbmnet.ledger import merkle as m


@pytest.fixture(scope="module")
def ref(request: pytest.FixtureRequest) -> dict[str, object]:
    from tests.conftest import ASSETS

    return json.loads((ASSETS / "merkle_reference_hashes.json").read_text())


def test_reference_roots(ref: dict) -> None:
    leaves = [bytes.fromhex(x) for x in ref["leaf_inputs_hex"]]
    roots = ref["root_hashes_by_size_hex"]
    assert len(roots) == len(leaves) + 1
    for size, want in enumerate(roots):
        assert m.root_hash(leaves[:size]).hex() == want


def test_reference_subtree_hashes(ref: dict) -> None:
    leaves = [bytes.fromhex(x) for x in ref["leaf_inputs_hex"]]
    for level, hashes in enumerate(ref["node_hashes_by_level_hex"]):
        for i, want in enumerate(hashes):
            lo, hi = i << level, (i + 1) << level
            assert m.root_hash(leaves[lo:hi]).hex() == want


def test_reference_hasher_cases(ref: dict) -> None:
    for case in ref["hasher_cases"]:
        if case["op"] == "empty_root":
            got = m.EMPTY_ROOT
        elif case["op"] == "leaf":
            got = m.leaf_hash(bytes.fromhex(case["input_hex"]))
        else:
            got = m.node_hash(bytes.fromhex(case["left_hex"]), bytes.fromhex(case["right_hex"]))
        assert got.hex() == case["want_hex"], case["desc"]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert m.root_hash([]).hex().startswith("e3b0c442")


def _spec_mth(d: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, recursively, straight from the text (the oracle)."""
    if not d:
        return m.EMPTY_ROOT
    if len(d) == 1:
        return m.leaf_hash(d[0])
    k = 1
    while k * 2 < len(d):
        k *= 2
    return m.node_hash(_spec_mth(d[:k]), _spec_mth(d[k:]))


def _spec_path(i: int, d: list[bytes]) -> list[bytes]:
    if len(d) <= 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    if i < k:
        return [*_spec_path(i, d[:k]), _spec_mth(d[k:])]
    return [*_spec_path(i - k, d[k:]), _spec_mth(d[:k])]


def _spec_subproof(mm: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if mm == n:
        return [] if b else [_spec_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if mm <= k:
        return [*_spec_subproof(mm, d[:k], b), _spec_mth(d[k:])]
    return [*_spec_subproof(mm - k, d[k:], False), _spec_mth(d[:k])]


entries_st = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


@given(entries_st, st.data())
@settings(max_examples=200, deadline=None)
def test_proofs_match_the_spec_and_verify(entries: list[bytes], data: st.DataObject) -> None:
    n = len(entries)
    root = m.root_hash(entries)
    assert root == _spec_mth(entries)
    i = data.draw(st.integers(0, n - 1))
    proof = m.inclusion_proof(entries, i)
    assert proof == _spec_path(i, entries)
    m.verify_inclusion(m.leaf_hash(entries[i]), i, n, proof, root)
    old = data.draw(st.integers(1, n))
    cproof = m.consistency_proof(entries, old)
    assert cproof == (_spec_subproof(old, entries, True) if old < n else [])
    m.verify_consistency(old, n, cproof, m.root_hash(entries[:old]), root)


def _shape(i: int, n: int) -> list[bool]:
    """Which side each audit-path sibling lies on: all the verifier's computation sees."""
    return [lo < i for lo, _ in m.inclusion_ranges(i, n)]


def _flip(b: bytes, bit: int) -> bytes:
    a = bytearray(b)
    a[bit // 8] ^= 1 << (bit % 8)
    return bytes(a)


@given(entries_st.filter(lambda e: len(e) > 1), st.data())
@settings(max_examples=150, deadline=None)
def test_inclusion_rejects_every_change(entries: list[bytes], data: st.DataObject) -> None:
    n = len(entries)
    i = data.draw(st.integers(0, n - 1))
    root, leaf = m.root_hash(entries), m.leaf_hash(entries[i])
    proof = m.inclusion_proof(entries, i)
    bad: list[Callable[[], None]] = []
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        flipped = [*proof[:j], _flip(proof[j], bit), *proof[j + 1 :]]
        bad.append(lambda: m.verify_inclusion(leaf, i, n, flipped, root))
        bad.append(lambda: m.verify_inclusion(leaf, i, n, proof[:-1], root))
        bad.append(lambda: m.verify_inclusion(leaf, i, n, [*proof, proof[0]], root))
        bad.append(lambda: m.verify_inclusion(leaf, i, n, [*proof[:j], proof[j][:31]], root))
    bit = data.draw(st.integers(0, 255))
    bad.append(lambda: m.verify_inclusion(leaf, i, n, proof, _flip(root, bit)))
    bad.append(lambda: m.verify_inclusion(_flip(leaf, bit), i, n, proof, root))
    other = data.draw(st.integers(0, n - 1).filter(lambda x: x != i))
    if m.leaf_hash(entries[other]) != leaf:
        bad.append(lambda: m.verify_inclusion(leaf, other, n, proof, root))
    # A wrong size is caught whenever it changes the proof's shape. Where leaf i has the
    # same audit-path shape in both sizes the hashes alone cannot tell them apart; the
    # signed checkpoint binds size and root together, which is why proofs are checked
    # against a checkpoint, never a bare root.
    for n2 in (n - 1, n + 1, 2 * n):
        if n2 > i and _shape(i, n2) != _shape(i, n):
            bad.append(lambda n2=n2: m.verify_inclusion(leaf, i, n2, proof, root))
    bad.append(lambda: m.verify_inclusion(leaf, n, n, proof, root))
    bad.append(lambda: m.verify_inclusion(leaf, -1, n, proof, root))
    for attempt in bad:
        with pytest.raises(VerificationError):
            attempt()


@given(st.lists(st.binary(max_size=4), min_size=2, max_size=70), st.data())
@settings(max_examples=150, deadline=None)
def test_consistency_rejects_every_change(entries: list[bytes], data: st.DataObject) -> None:
    n = len(entries)
    old = data.draw(st.integers(1, n - 1))
    r1, r2 = m.root_hash(entries[:old]), m.root_hash(entries)
    proof = m.consistency_proof(entries, old)
    assert proof
    j = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    flipped = [*proof[:j], _flip(proof[j], bit), *proof[j + 1 :]]
    attempts: list[Callable[[], None]] = [
        lambda: m.verify_consistency(old, n, flipped, r1, r2),
        lambda: m.verify_consistency(old, n, proof[:-1], r1, r2),
        lambda: m.verify_consistency(old, n, [*proof, proof[0]], r1, r2),
        lambda: m.verify_consistency(old, n, proof, _flip(r1, bit), r2),
        lambda: m.verify_consistency(old, n, proof, r1, _flip(r2, bit)),
        lambda: m.verify_consistency(n, old, proof, r1, r2),
        lambda: m.verify_consistency(old, n, [proof[0][:31], *proof[1:]], r1, r2),
    ]
    for o2, n2 in ((old - 1, n), (old + 1, n), (old, n + 1), (old, 2 * n)):
        if 0 < o2 <= n2 and len(m.consistency_ranges(o2, n2)) != len(proof):
            attempts.append(lambda o2=o2, n2=n2: m.verify_consistency(o2, n2, proof, r1, r2))
    for attempt in attempts:
        with pytest.raises(VerificationError):
            attempt()


def test_consistency_edge_cases() -> None:
    e = [b"a", b"b", b"c"]
    r = m.root_hash(e)
    m.verify_consistency(3, 3, [], r, r)
    m.verify_consistency(0, 3, [], m.EMPTY_ROOT, r)
    with pytest.raises(VerificationError):
        m.verify_consistency(3, 3, [r], r, r)
    with pytest.raises(VerificationError):
        m.verify_consistency(3, 3, [], r, m.root_hash(e[:2]))
    with pytest.raises(VerificationError):
        m.verify_consistency(0, 3, [], r, r)  # the empty tree's root is fixed
    with pytest.raises(VerificationError):
        m.verify_consistency(1, 3, [], m.root_hash(e[:1]), r)
    assert m.consistency_proof(e, 0) == [] and m.consistency_proof(e, 3) == []
    with pytest.raises(FormatError):
        m.consistency_proof(e, 4)
    with pytest.raises(FormatError):
        m.inclusion_proof(e, 3)


@given(st.integers(1, 5000), st.data())
def test_split_range_covers_every_proof_range(size: int, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(0, size))
    for lo, hi in [*m.inclusion_ranges(i, size), *m.consistency_ranges(old, size), (0, size)]:
        parts = m.split_range(lo, hi)
        covered = lo
        for level, idx in parts:
            assert idx << level == covered
            covered += 1 << level
        assert covered == hi


@given(st.lists(st.binary(max_size=4), max_size=300))
def test_frontier_matches_root(entries: list[bytes]) -> None:
    frontier: list[m.Node] = []
    created: list[m.Node] = []
    for i, e in enumerate(entries):
        m.extend_frontier(frontier, i, m.leaf_hash(e), created)
        assert m.frontier_root(frontier) == m.root_hash(entries[: i + 1])
    assert [(lv, ix) for lv, ix, _ in frontier] == (m.split_range(0, len(entries)) if entries else [])
    # Every complete subtree is recorded exactly once.
    assert len(created) == len({(lv, ix) for lv, ix, _ in created})
    assert len(created) == sum(len(entries) >> lv for lv in range(len(entries).bit_length()))


def test_reference_file_is_in_the_repository(asset: Callable[[str], Path]) -> None:
    assert asset("merkle_reference_hashes.json").stat().st_size > 0
