"""transparency-dev/merkle peer vectors for RFC 6962/9162 inclusion and consistency proofs.

The vectors are data only, in ``tests/assets/transparency-dev-merkle-vectors.json`` (see
``tests/assets/README.md`` for provenance and licence). Every vector is run through our
verifiers: ``wantErr: false`` must verify, ``wantErr: true`` must raise ``VerificationError``.
The happy paths are also rebuilt from the reference tree's leaves, and our proof builders must
produce exactly the peer's proof.

Conversions from the Go encoding, all faithful:

* hashes are standard base64 (Go ``[]byte`` JSON); ``""`` decodes to an empty byte string, and
  ``"V3JvbmdMZWFm"``/``"V3JvbmdSb290"`` to the 9-byte ``WrongLeaf``/``WrongRoot``: both are
  passed as they are, and our verifiers must reject them;
* ``"proof": null`` (a nil Go slice) is the empty proof;
* sizes and indices are Go ``uint64``. The ``- 1`` mutations of index 0 were wrapped round
  when the vectors were written, so the files hold ``18446744073709551615`` (2**64 - 1), never
  a negative number. We pass that integer unchanged: it is what the Go verifier is given too,
  and for us it is simply an index far outside the tree;
* older versions of the files name the leaf index ``leafIndex`` instead of ``leafIdx``; both
  are read.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cbmnet.errors import VerificationError
from cbmnet.ledger import merkle as m

ASSET = Path(__file__).resolve().parent / "assets" / "transparency-dev-merkle-vectors.json"
VECTORS: dict[str, Any] = json.loads(ASSET.read_text())
INCLUSION: list[dict[str, Any]] = VECTORS["inclusion"]
CONSISTENCY: list[dict[str, Any]] = VECTORS["consistency"]
UINT64_MAX = 2**64 - 1


def _hash(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _proof(v: dict[str, Any]) -> list[bytes]:
    return [_hash(p) for p in v["proof"] or []]


def _leaf_index(v: dict[str, Any]) -> int:
    return v["leafIdx"] if "leafIdx" in v else v["leafIndex"]


def _params(vectors: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(v, id=v["path"]) for v in vectors]


def _happy(vectors: list[dict[str, Any]]) -> list[Any]:
    return _params([v for v in vectors if not v["wantErr"]])


@pytest.fixture
def ref_leaves(asset: Callable[[str], Path]) -> list[bytes]:
    """The reference tree's leaf inputs (transparency-dev/merkle testonly constants)."""
    ref = json.loads(asset("merkle_reference_hashes.json").read_text())
    return [bytes.fromhex(x) for x in ref["leaf_inputs_hex"]]


def _require_reference_tree(leaves: list[bytes], size: int, root: str) -> None:
    """Compare proofs only for a vector provably about the reference tree's first leaves."""
    if size > len(leaves) or m.root_hash(leaves[:size]) != _hash(root):
        pytest.skip(f"root of size {size} is not the reference tree's: nothing to rebuild from")


# ---- the asset itself -------------------------------------------------------------------------


def test_asset_shape() -> None:
    assert VECTORS["source"] == "transparency-dev/merkle testdata (Apache-2.0)"
    assert INCLUSION
    assert CONSISTENCY
    paths = [v["path"] for v in INCLUSION + CONSISTENCY]
    assert len(paths) == len(set(paths))
    for v in INCLUSION + CONSISTENCY:
        assert len(v["commit"]) == 40
        assert isinstance(v["wantErr"], bool)
    for v in INCLUSION:
        assert v["path"].startswith("testdata/inclusion/")
        assert 0 <= _leaf_index(v) <= UINT64_MAX
        assert 0 <= v["treeSize"] <= UINT64_MAX
    for v in CONSISTENCY:
        assert v["path"].startswith("testdata/consistency/")
        assert 0 <= v["size1"] <= UINT64_MAX
        assert 0 <= v["size2"] <= UINT64_MAX
    # Every vector folder taken has its happy path, so no mutation lacks its original.
    folders = {v["path"].rsplit("/", 1)[0] for v in INCLUSION + CONSISTENCY}
    happy = {v["path"].rsplit("/", 1)[0] for v in INCLUSION + CONSISTENCY if not v["wantErr"]}
    assert folders == happy


# ---- verification -----------------------------------------------------------------------------


@pytest.mark.parametrize("v", _params(INCLUSION))
def test_inclusion_vector(v: dict[str, Any]) -> None:
    args = (_hash(v["leafHash"]), _leaf_index(v), v["treeSize"], _proof(v), _hash(v["root"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            m.verify_inclusion(*args)
    else:
        m.verify_inclusion(*args)


@pytest.mark.parametrize("v", _params(CONSISTENCY))
def test_consistency_vector(v: dict[str, Any]) -> None:
    args = (v["size1"], v["size2"], _proof(v), _hash(v["root1"]), _hash(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            m.verify_consistency(*args)
    else:
        m.verify_consistency(*args)


# ---- our proof builders produce the peer's proofs -------------------------------------------


@pytest.mark.parametrize("v", _happy(INCLUSION))
def test_inclusion_proof_matches_peer(v: dict[str, Any], ref_leaves: list[bytes]) -> None:
    size, index = v["treeSize"], _leaf_index(v)
    _require_reference_tree(ref_leaves, size, v["root"])
    leaves = ref_leaves[:size]
    assert m.leaf_hash(leaves[index]) == _hash(v["leafHash"])
    assert m.inclusion_proof(leaves, index) == _proof(v)


@pytest.mark.parametrize("v", _happy(CONSISTENCY))
def test_consistency_proof_matches_peer(v: dict[str, Any], ref_leaves: list[bytes]) -> None:
    old, new = v["size1"], v["size2"]
    _require_reference_tree(ref_leaves, old, v["root1"])
    _require_reference_tree(ref_leaves, new, v["root2"])
    leaves = ref_leaves[:new]
    assert m.consistency_proof(leaves, old) == _proof(v)
