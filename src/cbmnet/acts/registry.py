"""Who a party is, over time: its keys, folded from the registry acts of the log.

One fold, used by the hub (admission), the client (which keys to trust) and every
party's audit (re-checking the hub), so the three cannot disagree on who could sign what
at any index (docs/adr/0007).

Identity belongs to its holder. The secretariat registers a party (its first signing,
encryption and witness keys, and the offline recovery key it declared), and nothing more:
afterwards only the party changes its keys, in one of three ways, each a logged act that
names who signed it (``by``):

* ``by`` = the party: signed with its current signing key (a routine rotation, or the
  revocation of one of its keys);
* ``by`` = ``"recovery"``: signed with the recovery key the party declared and keeps
  offline (its signing key was lost or stolen); only this way, or a quorum, changes the
  recovery key itself, so a thief holding the signing key cannot lock the owner out;
* ``by`` = ``"quorum"``: the party lost both keys. Other parties sign ``key.approve``
  acts naming the exact new keys; once a quorum of them is logged, the party logs the
  rotation signed with the NEW signing key (proof that it holds it). The quorum is the
  larger of what the party's agreements say and a majority of the other registered
  parties that share an agreement with it, and never fewer than two: no single state,
  however few the parties, can take another's identity.

Pure: no I/O, no clock. Not thread-safe: its owner serialises access.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cbmnet.acts.model import HUB, PT_REGISTRY, SECRETARIAT, Act
from cbmnet.errors import CbmnetError, ConflictError, ForbiddenError, NotFoundError
from cbmnet.ledger import dsse
from cbmnet.ledger.note import parse_verifier_key

RECOVERY = "recovery"
QUORUM = "quorum"
MIN_RECOVERY_QUORUM = 2
"""Never fewer approvals than this: in a bilateral agreement the only other party is the
rival, and a quorum of one would hand it the party's identity."""


@dataclass
class Key:
    public: bytes
    since: int
    until: int | None = None
    """Index of the act that retired or revoked it; acts after it are refused."""
    revoked: bool = False


@dataclass
class Party:
    id: str
    name: str
    agreements: tuple[str, ...]
    contact: dict[str, str]
    keys: list[Key]
    encryption_key: bytes
    witness_key: str | None
    registered_at: int
    recovery_key: bytes | None = None
    """Ed25519 key the party keeps offline; it alone (or a quorum) can replace it."""

    def active_keys(self) -> list[bytes]:
        return [k.public for k in self.keys if k.until is None]


@dataclass(frozen=True)
class Proposal:
    """The exact keys a quorum rotation installs: what each approval names."""

    signing_key: str
    encryption_key: str | None
    witness_key: str | None
    recovery_key: str | None

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Proposal:
        return cls(
            str(doc["signing_key"]),
            doc.get("encryption_key"),
            doc.get("witness_key"),
            doc.get("recovery_key"),
        )


@dataclass
class Registry:
    """The parties and their keys as the registry acts read so far have made them."""

    secretariat_key: bytes
    hub_key: bytes
    quorums: Mapping[str, int] = field(default_factory=dict)
    """Agreement id -> how many approvals recover a party's identity (absent: a majority)."""
    parties: dict[str, Party] = field(default_factory=dict)
    approvals: dict[tuple[str, Proposal], dict[str, int]] = field(default_factory=dict)
    """(party, proposed keys) -> approver -> index of its ``key.approve`` act."""
    used_keys: set[bytes] = field(default_factory=set)
    """Every Ed25519 key ever registered (signing or recovery, by anyone): never reused."""
    witnesses: dict[str, str] = field(default_factory=dict)
    """Cosigner verifier key text -> the party that registered it first."""
    witness_holders: dict[bytes, str] = field(default_factory=dict)
    """A witness's public key -> the party that registered it: unique for good, whatever
    name the key text gives it (one key under two names is still one witness)."""

    # ---- who may sign ----------------------------------------------------------------

    def signing_keys(self, author: str) -> list[bytes]:
        """The keys that may sign ``author``'s next ordinary act (empty: none)."""
        if author == SECRETARIAT:
            return [self.secretariat_key]
        if author == HUB:
            return [self.hub_key]
        p = self.parties.get(author)
        return p.active_keys() if p else []

    def signers_for(self, act: Act) -> list[bytes]:
        """The keys one of which must have signed ``act`` for it to be the author's."""
        if act.payload_type == PT_REGISTRY and act.kind in ("key.rotate", "key.revoke"):
            by = act.doc["by"]
            p = self.parties.get(act.author)
            if by == RECOVERY:
                return [p.recovery_key] if p is not None and p.recovery_key else []
            if by == QUORUM:  # proof of possession of the new key; approvals do the rest
                return [parse_verifier_key(act.doc["signing_key"]).public_key] if p else []
        return self.signing_keys(act.author)

    def party_of_key(self, key: bytes) -> str | None:
        if key == self.secretariat_key:
            return SECRETARIAT
        for p in self.parties.values():
            if key in p.active_keys():
                return p.id
        return None

    def quorum(self, party: str) -> tuple[int, list[str]]:
        """(approvals needed, the parties whose approval counts) to recover ``party``."""
        p = self.parties[party]
        shared = set(p.agreements)
        eligible = sorted(
            q.id for q in self.parties.values() if q.id != party and shared & set(q.agreements)
        )
        need = len(eligible) // 2 + 1
        for aid in p.agreements:
            need = max(need, self.quorums.get(aid, 0))
        return max(need, MIN_RECOVERY_QUORUM), eligible

    # ---- deciding ----------------------------------------------------------------------

    def check(self, act: Act) -> None:
        """May this registry act (its signature already checked) be logged next?"""
        d, what = act.doc, f"registry act {act.kind!r}"
        pid = d["party"]
        if act.kind == "party.register":
            if pid in self.parties:
                raise ConflictError(f"{what}: party {pid!r} is already registered")
            self._fresh_key(d["signing_key"], what, "signing_key")
            if d.get("recovery_key") is not None:
                self._fresh_key(d["recovery_key"], what, "recovery_key")
            self._fresh_witness(pid, d.get("witness_key"), what)
            return
        if act.kind == "key.approve":
            self._check_approval(act, what)
            return
        party = self.parties.get(pid)
        if party is None:
            raise NotFoundError(f"{what}: {pid!r} is not a registered party")
        by = d["by"]
        if act.kind == "key.revoke":
            key = parse_verifier_key(d["key"]).public_key
            if not any(k.public == key and not k.revoked for k in party.keys):
                raise NotFoundError(f"{what}: {pid!r} holds no unrevoked key like that")
            return
        self._fresh_key(d["signing_key"], what, "signing_key")
        if d.get("recovery_key") is not None:
            if by == pid:
                raise ForbiddenError(
                    f"{what}, field 'recovery_key': only the recovery key itself (by 'recovery') "
                    "or a quorum replaces it, so a stolen signing key cannot lock its owner out"
                )
            self._fresh_key(d["recovery_key"], what, "recovery_key")
        self._fresh_witness(pid, d.get("witness_key"), what)
        if by == QUORUM:
            need, eligible = self.quorum(pid)
            got = sorted(a for a in self.approvals.get((pid, Proposal.of(d)), {}) if a in eligible)
            if len(got) < need:
                raise ForbiddenError(
                    f"{what}: recovering {pid!r} by quorum needs {need} approvals of exactly these keys "
                    f"from {', '.join(eligible) or 'other parties'}; the log holds {len(got)}"
                    + (f" ({', '.join(got)})" if got else "")
                )

    def _check_approval(self, act: Act, what: str) -> None:
        d = act.doc
        target = d["for"]
        if target == act.author:
            raise ForbiddenError(f"{what}: a party does not approve its own recovery")
        if target not in self.parties:
            raise NotFoundError(f"{what}, field 'for': {target!r} is not a registered party")
        _, eligible = self.quorum(target)
        if act.author not in eligible:
            raise ForbiddenError(f"{what}: {act.author!r} shares no agreement with {target!r}")
        self._fresh_key(d["signing_key"], what, "signing_key")
        if d.get("recovery_key") is not None:
            self._fresh_key(d["recovery_key"], what, "recovery_key")
        self._fresh_witness(target, d.get("witness_key"), what)
        if act.author in self.approvals.get((target, Proposal.of(d)), {}):
            raise ConflictError(f"{what}: {act.author!r} approved these keys for {target!r} already")

    def _fresh_key(self, text: str, what: str, fld: str) -> None:
        key = parse_verifier_key(text).public_key
        if key in self.used_keys or key in (self.secretariat_key, self.hub_key):
            raise ConflictError(
                f"{what}, field {fld!r}: that key was used before; keys are never used twice"
            )

    def _fresh_witness(self, party: str, text: Any, what: str) -> None:
        if text is None:
            return
        holder = self.witness_holders.get(parse_verifier_key(str(text)).public_key)
        if holder is not None and holder != party:
            raise ConflictError(f"{what}, field 'witness_key': that witness key is registered already")

    def fault(self, index: int, act: Act, envelope: bytes) -> str | None:
        """What is wrong with a logged registry act, as a reader of the log re-checks it
        before folding it (the client, every party's audit, an evidence document): not
        signed by a key ``signers_for`` allows, or against a rule of ``check``. None: it
        stands."""
        try:
            dsse.verify(envelope, self.signers_for(act))
        except CbmnetError:
            return f"entry {index}: {unsigned_registry_act(act)}"
        try:
            self.check(act)
        except CbmnetError as e:
            return f"entry {index}: {act.kind} of {act_party(act)!r} breaks the registry rules: {e}"
        return None

    # ---- folding -----------------------------------------------------------------------

    def apply(self, act: Act, index: int) -> None:
        """Fold a registry act logged at ``index`` (never raises for one ``check`` admitted)."""
        d = act.doc
        pid = d["party"]
        if act.kind == "party.register":
            if pid in self.parties:
                return
            key = parse_verifier_key(d["signing_key"]).public_key
            recovery = _opt_key(d.get("recovery_key"))
            self.parties[pid] = Party(
                pid,
                d["name"],
                tuple(d["agreements"]),
                dict(d.get("contact") or {}),
                [Key(key, index)],
                base64.b64decode(d["encryption_key"]),
                d.get("witness_key"),
                index,
                recovery,
            )
            self._used(key, recovery)
            self._witness(pid, d.get("witness_key"))
            return
        if act.kind == "key.approve":
            self.approvals.setdefault((d["for"], Proposal.of(d)), {}).setdefault(act.author, index)
            return
        party = self.parties.get(pid)
        if party is None:
            return
        if act.kind == "key.rotate":
            for k in party.keys:
                if k.until is None:
                    k.until = index
            key = parse_verifier_key(d["signing_key"]).public_key
            party.keys.append(Key(key, index))
            if d.get("encryption_key"):
                party.encryption_key = base64.b64decode(d["encryption_key"])
            if d.get("witness_key"):
                party.witness_key = d["witness_key"]
                self._witness(pid, d["witness_key"])
            if d.get("recovery_key"):
                party.recovery_key = _opt_key(d["recovery_key"])
            self._used(key, party.recovery_key)
        else:
            key = parse_verifier_key(d["key"]).public_key
            for k in party.keys:
                if k.public == key:
                    k.revoked = True
                    if k.until is None:
                        k.until = index

    def _used(self, *keys: bytes | None) -> None:
        self.used_keys.update(k for k in keys if k)

    def _witness(self, party: str, text: Any) -> None:
        if text:
            vkey = parse_verifier_key(str(text))
            self.witnesses.setdefault(vkey.text, party)
            self.witness_holders.setdefault(vkey.public_key, party)

    def witness_keys(self) -> list[str]:
        """Each party's current witness key, once (the checkpoint policy's witnesses)."""
        return sorted({p.witness_key for p in self.parties.values() if p.witness_key})

    def policy_witnesses(self) -> list[tuple[str, str]]:
        """(party, current witness key), sorted by party, each public key once.

        A log written before witness keys were unique may name one key for two parties;
        it counts once, for the party that registered it first (a tlog-policy refuses a
        key listed twice, and a copied key must not buy a second vote).
        """
        first: dict[bytes, str] = {}
        for text, holder in self.witnesses.items():  # in log order
            first.setdefault(parse_verifier_key(text).public_key, holder)
        out: list[tuple[str, str]] = []
        for pid in sorted(self.parties):
            w = self.parties[pid].witness_key
            if w and first.setdefault(parse_verifier_key(w).public_key, pid) == pid:
                out.append((pid, w))
        return out


def majority_policy_text(log_vkey: str, witnesses: Sequence[tuple[str, str]]) -> tuple[str, int]:
    """The regime's default tlog-policy and its threshold: the log, and a majority of the
    registered parties' witnesses (``Registry.policy_witnesses``); ``quorum none`` when no
    party registered a witness. The dashboard shows it and pinned clients apply it."""
    lines = [f"log {log_vkey}"]
    lines += [f"witness {pid} {vkey}" for pid, vkey in witnesses]
    if not witnesses:
        return "\n".join([*lines, "quorum none"]) + "\n", 0
    k = len(witnesses) // 2 + 1
    lines += [f"group majority {k} {' '.join(pid for pid, _ in witnesses)}", "quorum majority"]
    return "\n".join(lines) + "\n", k


def _opt_key(text: Any) -> bytes | None:
    return parse_verifier_key(str(text)).public_key if text else None


KEY_CHANGES = ("key.rotate", "key.revoke")


def act_party(act: Act) -> str:
    """Whose identity a registry act is about: the approver's for a ``key.approve`` (its
    own key signs it), the named party's otherwise."""
    return act.author if act.kind == "key.approve" else str(act.doc["party"])


def unsigned_registry_act(act: Act) -> str:
    """Why a registry act whose signature is not under ``Registry.signers_for`` is refused."""
    p = act_party(act)
    if act.kind in KEY_CHANGES:
        return (
            f"{act.kind} of {p!r} is not signed by {p}'s current key, its recovery key or a "
            f'quorum: a unilateral key change (it says "by": {act.doc.get("by")!r})'
        )
    if act.kind == "party.register":
        return f"party.register of {p!r} is not signed by the secretariat"
    return f"{act.kind} of {p!r} for {act.doc.get('for')!r} is not signed by {p}'s current key"
