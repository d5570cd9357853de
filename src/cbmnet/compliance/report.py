"""Obligations, findings and the report, in the JSON of ``events-v1.md``.

Output is deterministic byte for byte: items are sorted by (due, party, provision, id)
and serialised with a fixed key order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from cbmnet.compliance.timeutil import format_time

Status = Literal["pending", "met", "late", "missed", "waived"]
Severity = Literal["violation", "lapse", "info"]

SEVERITY: dict[str, Severity] = {
    "notification.missing": "violation",
    "notification.late": "lapse",
    # The notice came, but without something the agreement says it must give
    # (IN-PK 2005 Arts. 2, 4: the launch window, the annexed format): a real failure to
    # notify fully, yet less than no notice, and partly cbmnet's reading of an unread annex.
    "notification.incomplete": "lapse",
    "observation.invitation_missing": "violation",
    "observation.invitation_late": "lapse",
    "calendar.missing": "lapse",
    "announcement.missing": "violation",
    "constraint.count_exceeded": "violation",
    "constraint.simultaneous_exceeded": "violation",
    "constraint.zone_violation": "violation",
    "exchange.missing": "violation",
    "exchange.late": "lapse",
    "exchange.incomplete": "lapse",
    "reply.missing": "violation",
    "reply.late": "lapse",
    "quota.refusal_within_quota": "violation",
    "check.missed": "lapse",
    "discrepancy.undeclared_activity": "violation",
    "discrepancy.size": "violation",
    "discrepancy.zone": "violation",
    # Extensions (docs/agreements.md): verification visits.
    "visit.entry_late": "lapse",
    "visit.stay_exceeded": "violation",
    "visit.team_too_large": "violation",
    # Where an event the engine would judge on was withdrawn: not an accusation.
    "data.unassessable": "info",
}


@dataclass(slots=True)
class Obligation:
    id: str
    party: str
    provision: str
    kind: str
    due: int
    status: Status
    met_by: str | None = None
    subjects: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "party": self.party,
            "provision": self.provision,
            "kind": self.kind,
            "due": format_time(self.due),
            "status": self.status,
            "met_by": self.met_by,
            "subjects": list(self.subjects),
        }

    def json_line(self) -> str:
        """``to_json`` as ``_encode`` writes it, without building the dict (a report at
        100,000 events has some 50,000 obligations; tests/test_report_lines.py)."""
        met_by = "null" if self.met_by is None else _q(self.met_by)
        return (
            f'{{"id": {_q(self.id)}, "party": {_q(self.party)}, "provision": {_q(self.provision)},'
            f' "kind": {_q(self.kind)}, "due": "{format_time(self.due)}", "status": {_q(self.status)},'
            f' "met_by": {met_by}, "subjects": [{", ".join(map(_q, self.subjects))}]}}'
        )


@dataclass(slots=True)
class Finding:
    code: str
    party: str
    provision: str
    subjects: tuple[str, ...]
    due: int | None
    message: str
    period: str | None = None
    measure: str = ""
    evidence: dict[str, Any] | None = field(default=None, compare=False)
    unconfirmed: str | None = None
    """Why the measure's figure is not settled by the treaty text (its ``unconfirmed``)."""
    convention: str | None = None
    """Why the measure's window is cbmnet's convention, not the text's figure."""

    @property
    def severity(self) -> Severity:
        """The code's severity; ``info`` when it rests on a figure the text did not settle
        or on cbmnet's own convention: cbmnet never accuses on a figure the treaty lacks."""
        if self.unconfirmed or self.convention:
            return "info"
        return SEVERITY.get(self.code, "info")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "party": self.party,
            "provision": self.provision,
            "subjects": list(self.subjects),
            "due": format_time(self.due) if self.due is not None else None,
            "period": self.period,
            "severity": self.severity,
            "message": self.message
            + (f" (rests on an unconfirmed figure: {self.unconfirmed})" if self.unconfirmed else "")
            + (f" (a convention: {self.convention})" if self.convention else ""),
            "measure": self.measure,
        }
        if self.evidence is not None:
            out["evidence"] = self.evidence
        return out

    def json_line(self) -> str:
        """``to_json`` as ``_encode`` writes it, without building the dict."""
        due = "null" if self.due is None else f'"{format_time(self.due)}"'
        period = "null" if self.period is None else _q(self.period)
        message = (
            self.message
            + (f" (rests on an unconfirmed figure: {self.unconfirmed})" if self.unconfirmed else "")
            + (f" (a convention: {self.convention})" if self.convention else "")
        )
        evidence = "" if self.evidence is None else f', "evidence": {_encode(self.evidence)}'
        return (
            f'{{"code": {_q(self.code)}, "party": {_q(self.party)}, "provision": {_q(self.provision)},'
            f' "subjects": [{", ".join(map(_q, self.subjects))}], "due": {due}, "period": {period},'
            f' "severity": {_q(self.severity)}, "message": {_q(message)},'
            f' "measure": {_q(self.measure)}{evidence}}}'
        )


@dataclass(frozen=True)
class Report:
    agreement: str
    as_of: int
    obligations: tuple[Obligation, ...]
    findings: tuple[Finding, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "agreement": self.agreement,
            "as_of": format_time(self.as_of),
            "obligations": [o.to_json() for o in self.obligations],
            "findings": [f.to_json() for f in self.findings],
        }

    def dumps(self) -> str:
        """The report as ``cbmnet check`` writes it: one obligation or finding a line.

        Each record goes through the json module's C encoder; ``indent`` would send the
        whole document through its pure-Python one, which took most of ``cbmnet check``'s
        time at 100,000 events (issue 17)."""
        records = {
            "obligations": [o.json_line() for o in self.obligations],
            "findings": [f.json_line() for f in self.findings],
        }
        lines = [
            "{",
            f' "agreement": {_encode(self.agreement)},',
            f' "as_of": {_encode(format_time(self.as_of))},',
        ]
        for key, last in (("obligations", False), ("findings", True)):
            items = records[key]
            tail = "" if last else ","
            if not items:
                lines.append(f' "{key}": []{tail}')
                continue
            lines.append(f' "{key}": [')
            lines.append(",\n".join("  " + line for line in items))
            lines.append(f" ]{tail}")
        return "\n".join(lines) + "\n}\n"


_encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
"""Compact but spaced JSON of one value, by the json module's C encoder."""
_q = json.encoder.encode_basestring
"""One string as ``_encode`` writes it (the same C function, ensure_ascii off)."""


def sort_obligations(items: list[Obligation]) -> tuple[Obligation, ...]:
    return tuple(sorted(items, key=lambda o: (o.due, o.party, o.provision, o.id)))


def sort_findings(items: list[Finding]) -> tuple[Finding, ...]:
    return tuple(
        sorted(
            items,
            key=lambda f: (
                f.due if f.due is not None else -1,
                f.party,
                f.provision,
                f.code,
                f.subjects,
                f.period or "",
            ),
        )
    )
