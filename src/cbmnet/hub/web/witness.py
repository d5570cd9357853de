"""The log page's witness verdict: does a checkpoint carry the cosignatures a party needs?

Why a policy derived from the registry: every registered party names a witness key, and
the regime's default is that a party relies on a checkpoint once a majority of the
parties' witnesses cosigned it (a split view then needs a majority to collude). The
policy is shown as a C2SP tlog-policy text, so a party can save it, change the quorum to
its own rule and check receipts offline with ``cbmnet verify`` under exactly that policy.
The verdict is recomputed here from the signatures, not taken from the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from cbmnet.acts.registry import majority_policy_text
from cbmnet.errors import CbmnetError
from cbmnet.hub.web.i18n import gettext
from cbmnet.ledger.policy import Policy, parse_policy, verify_checkpoint


@dataclass(frozen=True)
class WitnessPolicy:
    text: str
    policy: Policy
    witnesses: tuple[str, ...]
    threshold: int


def registry_policy(named: list[tuple[str, str]], log_vkey: str) -> WitnessPolicy:
    """Majority of the registered parties' witnesses (``named``: ``Registry.policy_witnesses``).

    A witness key two parties named (a log written before keys were unique) counts once,
    for the party that registered it first, so the page works for everyone.
    """
    text, k = majority_policy_text(log_vkey, named)
    return WitnessPolicy(text, parse_policy(text), tuple(pid for pid, _ in named), k)


def verdict(note: str, cosignature_lines: list[str], wp: WitnessPolicy) -> dict[str, object]:
    """Which registered witnesses' cosignatures verify on this checkpoint, and whether the
    majority is met; a note that does not open under the log key says so."""
    signed = note if note.endswith("\n") else note + "\n"
    signed += "".join(ln + "\n" for ln in cosignature_lines)
    lax = Policy(logs=wp.policy.logs, witnesses=wp.policy.witnesses, quorum="none")
    try:
        agreed = verify_checkpoint(signed, lax)
    except CbmnetError as e:
        text = gettext("does not verify: %(error)s") % {"error": str(e)[:200]}
        return {"ok": False, "cosigned": [], "text": text}
    cosigned = sorted(agreed.cosigned_by)
    ok = wp.policy.satisfied(set(cosigned))
    if not wp.witnesses:
        text = gettext("no witness is registered: only the log's own signature vouches for it")
    elif ok:
        text = gettext("meets the majority quorum: %(n)s of %(total)s witnesses") % {
            "n": len(cosigned),
            "total": len(wp.witnesses),
        }
    else:
        text = gettext("not yet relied on: %(n)s of %(total)s witnesses cosigned, %(needed)s needed") % {
            "n": len(cosigned),
            "total": len(wp.witnesses),
            "needed": wp.threshold,
        }
    return {"ok": ok and bool(wp.witnesses), "cosigned": cosigned, "text": text}
