"""RFC 9162 §2.1 Merkle tree hashing, proofs and their verification.

Written here rather than taken from a library: the spec is small, must be exact, and the
available Python packages either number leaves from 1 or duplicate nodes (see
docs/adr/0001-log-format.md). Tested against the transparency-dev reference hashes.

Two layers:

* the contract functions (``root_hash``, ``inclusion_proof``, ``consistency_proof`` over a
  list of entries, and the two ``verify_*`` functions), and
* the range arithmetic that the store uses to build the same proofs from stored hashes
  of complete subtrees: ``inclusion_ranges``/``consistency_ranges`` say which subtrees a
  proof consists of, ``split_range`` decomposes one into aligned complete subtrees
  (``(level, index)`` pairs), ``fold_range`` hashes them back together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from cbmnet.errors import FormatError, VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 || entry)``."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _hash_leaves(leaves: Sequence[bytes]) -> bytes:
    """Root over already-hashed leaves, level by level; an odd last node moves up as is."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def subtree_root(hashes: Sequence[bytes]) -> bytes:
    """The root over nodes of one height, hashed pairwise as RFC 9162 does (``2^k`` nodes:
    a complete subtree)."""
    return _hash_leaves(hashes)


def root_hash(entries: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of the entries; the empty tree's root is ``SHA-256("")``."""
    return _hash_leaves([leaf_hash(e) for e in entries])


# ---- which subtrees make a proof ---------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges ``[lo, hi)`` whose hashes form the audit path, leaf's sibling first."""
    if not 0 <= index < size:
        raise FormatError(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the RFC 9162 consistency proof from old to new."""
    if not 0 <= old_size <= new_size:
        raise FormatError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    out.reverse()
    return out


def split_range(lo: int, hi: int) -> list[tuple[int, int]]:
    """Decompose an RFC subtree ``[lo, hi)`` into aligned complete subtrees, left to right.

    Each item is ``(level, index)``: the subtree over leaves
    ``[index * 2**level, (index + 1) * 2**level)``.
    """
    if not 0 <= lo < hi:
        raise FormatError(f"empty or negative leaf range [{lo}, {hi})")
    out: list[tuple[int, int]] = []
    while lo < hi:
        n = hi - lo
        k = n if n & (n - 1) == 0 else _split(n)
        level = k.bit_length() - 1
        if lo % k:
            raise FormatError(f"leaf range [{lo}, {hi}) is not a subtree of an RFC 9162 tree")
        out.append((level, lo >> level))
        lo += k
    return out


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of ``split_range``'s subtrees (left to right) into the range's hash."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _proof_from_leaves(leaves: Sequence[bytes], ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    return [_hash_leaves(leaves[lo:hi]) for lo, hi in ranges]


def inclusion_proof(entries: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 PATH(index, entries): the audit path, leaf's sibling first."""
    leaves = [leaf_hash(e) for e in entries]
    return _proof_from_leaves(leaves, inclusion_ranges(index, len(entries)))


def consistency_proof(entries: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 9162 PROOF(old_size, entries); empty when ``old_size`` is 0 or the full size."""
    leaves = [leaf_hash(e) for e in entries]
    return _proof_from_leaves(leaves, consistency_ranges(old_size, len(entries)))


def proof_from_subtrees(
    ranges: Sequence[tuple[int, int]],
    fetch: Callable[[Sequence[tuple[int, int]]], dict[tuple[int, int], bytes]],
) -> list[bytes]:
    """Build a proof from stored complete-subtree hashes, asking ``fetch`` once for all."""
    parts = [split_range(lo, hi) for lo, hi in ranges]
    wanted = sorted({node for p in parts for node in p})
    got = fetch(wanted)
    missing = [n for n in wanted if n not in got]
    if missing:
        level, idx = missing[0]
        raise VerificationError(f"tree node level {level} index {idx} is missing from the store")
    return [fold_range([got[n] for n in p]) for p in parts]


# ---- the right edge of a growing tree ---------------------------------------------------

Node = tuple[int, int, bytes]
"""``(level, index, hash)`` of a complete aligned subtree."""


def extend_frontier(frontier: list[Node], index: int, leaf: bytes, created: list[Node]) -> None:
    """Append leaf ``index`` to the tree's right edge; record every subtree it completes.

    ``frontier`` holds the complete subtrees of ``split_range(0, size)``, left to right.
    """
    node: Node = (0, index, leaf)
    created.append(node)
    while frontier and frontier[-1][0] == node[0]:
        level, left_idx, left = frontier.pop()
        node = (level + 1, left_idx >> 1, node_hash(left, node[2]))
        created.append(node)
    frontier.append(node)


def frontier_root(frontier: Sequence[Node]) -> bytes:
    """The root of the tree whose right edge is ``frontier``."""
    return fold_range([h for _, _, h in frontier]) if frontier else EMPTY_ROOT


# ---- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ---------------------------------------


def _check_hash(what: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is not a {HASH_SIZE}-byte SHA-256 hash")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ``VerificationError`` unless ``proof`` shows leaf ``index`` is in the tree."""
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root hash", root)
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    for i, p in enumerate(proof):
        _check_hash(f"inclusion proof hash {i}", p)
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the tree needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the tree needs")
    if r != root:
        raise VerificationError(f"inclusion proof for leaf {index} does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Raise ``VerificationError`` unless the tree of ``old_size`` is a prefix of the new one."""
    _check_hash("old root hash", old_root)
    _check_hash("new root hash", new_root)
    for i, p in enumerate(proof):
        _check_hash(f"consistency proof hash {i}", p)
    if old_size < 0 or new_size < old_size:
        raise VerificationError(f"no consistency from size {old_size} to size {new_size}")
    if old_size == new_size:
        if proof:
            raise VerificationError("trees of equal size need an empty consistency proof")
        if old_root != new_root:
            raise VerificationError(f"two different roots for the same tree size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise VerificationError("consistency from the empty tree needs an empty proof")
        if old_root != EMPTY_ROOT:
            raise VerificationError("the empty tree's root must be SHA-256 of the empty string")
        return
    if not proof:
        raise VerificationError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is longer than the trees need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is shorter than the trees need")
    if fr != old_root:
        raise VerificationError(f"consistency proof does not lead to the old root (size {old_size})")
    if sr != new_root:
        raise VerificationError(f"consistency proof does not lead to the new root (size {new_size})")
