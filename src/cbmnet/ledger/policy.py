"""C2SP trust policies (c2sp.org/tlog-policy): which logs, which witnesses, what quorum.

A CBM regime states here "at least k of the n parties' witnesses must cosign" before a
party relies on a checkpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cbmnet.errors import FormatError, PolicyError
from cbmnet.ledger.checkpoint import Checkpoint, parse_checkpoint
from cbmnet.ledger.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Ed25519Verifier,
    Note,
    new_verifier,
    open_note,
)

MAX_POLICY_ITEMS = 256


@dataclass(frozen=True)
class Group:
    threshold: int
    members: tuple[str, ...]


@dataclass
class Policy:
    logs: list[Ed25519Verifier] = field(default_factory=list)
    witnesses: dict[str, Ed25519Verifier] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    quorum: str = "none"

    def satisfied(self, cosigned: set[str]) -> bool:
        """Whether the witnesses named in ``cosigned`` meet the quorum."""
        return self._holds(self.quorum, cosigned)

    def _holds(self, name: str, cosigned: set[str]) -> bool:
        if name == "none":
            return True
        if name in self.witnesses:
            return name in cosigned
        g = self.groups[name]
        return sum(self._holds(m, cosigned) for m in g.members) >= g.threshold


def parse_policy(text: str) -> Policy:
    """Parse a policy file; names are checked in order, as the spec requires."""
    p = Policy()
    quorum: str | None = None
    seen_keys: set[bytes] = set()
    used: set[str] = set()
    items = 0
    for n, raw in enumerate(text.split("\n"), start=1):
        for c in raw:
            if (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F:
                raise FormatError(f"policy line {n}: control character")
        # Only ASCII space and tab separate items; other bytes are opaque name characters.
        words = [w for w in re.split(r"[ \t]+", raw) if w]
        if not words or words[0].startswith("#"):
            continue
        items += 1
        if items > MAX_POLICY_ITEMS:
            raise FormatError(f"policy: more than {MAX_POLICY_ITEMS} definitions")
        kind, args = words[0], words[1:]
        defined = set(p.witnesses) | set(p.groups)
        if kind == "log":
            if len(args) not in (1, 2):
                raise FormatError(f"policy line {n}: expected 'log <vkey> [url]'")
            v = _key(args[0], ALG_ED25519, n)
            if v.public_key in seen_keys:
                raise FormatError(f"policy line {n}: duplicate key")
            seen_keys.add(v.public_key)
            p.logs.append(v)
        elif kind == "witness":
            if len(args) not in (2, 3):
                raise FormatError(f"policy line {n}: expected 'witness <name> <vkey> [url]'")
            name = args[0]
            if name in defined or name == "none":
                raise FormatError(f"policy line {n}: name {name!r} defined twice")
            v = _key(args[1], ALG_COSIGNATURE_V1, n)
            if v.public_key in seen_keys:
                raise FormatError(f"policy line {n}: duplicate key")
            seen_keys.add(v.public_key)
            p.witnesses[name] = v
        elif kind == "group":
            if len(args) < 3:
                raise FormatError(f"policy line {n}: expected 'group <name> <k|all|any> <name>...'")
            name, k_s, members = args[0], args[1], tuple(args[2:])
            if name in defined or name == "none":
                raise FormatError(f"policy line {n}: name {name!r} defined twice")
            for m in members:
                if m not in defined:
                    raise FormatError(f"policy line {n}: {m!r} is not defined above")
                # Each name may be a member once in the whole file, so a witness counts
                # towards the quorum in one way only (and evaluation is a tree walk).
                if m in used:
                    raise FormatError(f"policy line {n}: {m!r} is already a group member")
                used.add(m)
            if k_s == "all":
                k = len(members)
            elif k_s == "any":
                k = 1
            elif k_s.isascii() and k_s.isdigit() and not k_s.startswith("0"):
                k = int(k_s)
                if not 1 <= k <= len(members):
                    raise FormatError(f"policy line {n}: threshold {k} outside 1..{len(members)}")
            else:
                raise FormatError(f"policy line {n}: threshold must be a number, 'all' or 'any'")
            p.groups[name] = Group(k, members)
        elif kind == "quorum":
            if quorum is not None:
                raise FormatError(f"policy line {n}: a second quorum line")
            if len(args) != 1 or (args[0] != "none" and args[0] not in defined):
                raise FormatError(f"policy line {n}: quorum must name a witness, a group or none")
            quorum = args[0]
        else:
            raise FormatError(f"policy line {n}: unknown keyword {kind!r}")
    if quorum is None:
        raise FormatError("policy: no quorum line")
    p.quorum = quorum
    return p


def _key(vkey: str, alg: int, line: int) -> Ed25519Verifier:
    try:
        v = new_verifier(vkey)
    except FormatError as e:
        raise FormatError(f"policy line {line}: {e}") from e
    if v.alg != alg:
        kind = "cosignature (0x04)" if alg == ALG_COSIGNATURE_V1 else "Ed25519 (0x01)"
        raise FormatError(f"policy line {line}: key must be of type {kind}")
    return v


@dataclass(frozen=True)
class AgreedCheckpoint:
    checkpoint: Checkpoint
    note: Note
    cosigned_by: frozenset[str]
    """Policy names of the witnesses whose cosignatures verified."""
    witness_ids: frozenset[tuple[str, int]] = frozenset()
    """(key name, key id) of those cosignatures, to find them in ``note.signatures``."""


def verify_checkpoint(signed: str, policy: Policy) -> AgreedCheckpoint:
    """Open a signed checkpoint under a policy: a listed log signed it, and the quorum cosigned.

    The log key's name must equal the checkpoint's origin (tlog-policy).
    """
    if not policy.logs:
        raise FormatError("policy lists no log")
    note = open_note(signed, [*policy.logs, *policy.witnesses.values()])
    cp = parse_checkpoint(note.text)
    log_ids = {(v.name, v.key_id) for v in policy.logs}
    if not any((s.name, s.key_id) in log_ids and s.name == cp.origin for s in note.signatures):
        raise PolicyError(f"checkpoint for {cp.origin!r} is not signed by a log of the policy")
    by_id = {(v.name, v.key_id): name for name, v in policy.witnesses.items()}
    cosigned = frozenset(
        by_id[(s.name, s.key_id)] for s in note.signatures if (s.name, s.key_id) in by_id
    )
    if not policy.satisfied(set(cosigned)):
        have = ", ".join(sorted(cosigned)) or "none"
        raise PolicyError(f"checkpoint size {cp.size}: witness quorum not met (cosigned: {have})")
    ids = frozenset((s.name, s.key_id) for s in note.signatures if (s.name, s.key_id) in by_id)
    return AgreedCheckpoint(cp, note, cosigned, ids)


def single_log_policy(log_vkey: str) -> Policy:
    """A policy that trusts one log and needs no witness (the 'quorum none' case)."""
    return Policy(logs=[_key(log_vkey, ALG_ED25519, 1)])
