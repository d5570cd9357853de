"""The figures reconciliation needs.

Buffer, margin, tolerance and minimum excess are matters the parties agree (they decide
what counts as a discrepancy): they come from the agreement's ``verification`` terms
(``for_agreement``). The rest are method parameters with documented defaults
(``docs/verification.md``); ``--settings`` may override any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cbmnet.agreements.model import Agreement
from cbmnet.compliance.timeutil import parse_duration
from cbmnet.errors import FormatError

_FORMATION_TROOPS = MappingProxyType(
    {"brigade": 3_000, "division": 10_000, "corps": 30_000, "above_corps": 60_000}
)
_MIN_EXCESS = MappingProxyType(
    {"troops": 500, "battle_tanks": 25, "acvs": 50, "artillery": 25, "aircraft": 5, "ships": 2}
)


@dataclass(frozen=True)
class ReconcileSettings:
    """Parameters of matching, clustering and the findings (defaults in docs/verification.md)."""

    buffer_km: float = 10.0
    """An observation this close to a declared area still belongs to it (agreement-level)."""
    time_margin: str = "PT24H"
    """... and this long before its start or after its end (agreement-level)."""
    size_tolerance: float = 0.20
    """Observed size may exceed the declared one by this fraction (agreement-level)."""
    min_excess: MappingProxyType[str, int] = field(default_factory=lambda: _MIN_EXCESS)
    """... and must exceed it by at least this many objects per size key to be a finding
    (about a tenth of the Vienna Document thresholds: stray detections are not a finding)."""
    look: str = "PT1H"
    """Untracked detections of one sensor within one such time bin are one look: summed."""
    cluster_km: float = 5.0
    """Cell edge of the space grid that groups unmatched observations."""
    cluster_time: str = "PT12H"
    """Cell length of the time grid that groups unmatched observations."""
    core_weight: float = 20.0
    """A cell is a cluster core when its detections add up to this many (confidence-weighted)
    objects; lone detections around no core are noise."""
    observed_categories: tuple[str, ...] = ("land", "transfer", "concentration")
    """What observed forces can be, for the agreement's scopes (sensors see no category)."""
    formation_troops: MappingProxyType[str, int] = field(default_factory=lambda: _FORMATION_TROOPS)
    """Observed troops taken to show at least this formation (a scope's formation_at_least)."""
    zone_min_estimate: float = 1.0
    """Forces in a forbidden area are a finding when they estimate to at least this many."""
    max_evidence_ids: int = 10_000
    """Evidence lists at most this many observation ids (the earliest); the rest are counted."""

    def __post_init__(self) -> None:
        for name in ("buffer_km", "size_tolerance", "cluster_km", "core_weight", "zone_min_estimate"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not v >= 0 or v != v or v == float("inf"):
                raise FormatError(f"reconcile settings, {name}: must be a finite number >= 0")
        if self.cluster_km <= 0:
            raise FormatError("reconcile settings, cluster_km: must be > 0")
        for name in ("time_margin", "look", "cluster_time"):
            parse_duration(getattr(self, name), f"reconcile settings, {name}")
        if self.look_ms <= 0 or self.cluster_time_ms <= 0:
            raise FormatError("reconcile settings: look and cluster_time must be longer than 0")
        if self.max_evidence_ids < 1:
            raise FormatError("reconcile settings, max_evidence_ids: must be >= 1")

    @property
    def margin_ms(self) -> int:
        return parse_duration(self.time_margin, "time_margin")

    @property
    def look_ms(self) -> int:
        return parse_duration(self.look, "look")

    @property
    def cluster_time_ms(self) -> int:
        return parse_duration(self.cluster_time, "cluster_time")

    @classmethod
    def for_agreement(cls, agreement: Agreement) -> ReconcileSettings:
        """The agreement's own terms (buffer, margin, tolerance, minimum excess), else defaults."""
        v = agreement.verification
        kw: dict[str, Any] = {
            "buffer_km": v.buffer_km,
            "time_margin": v.time_margin,
            "size_tolerance": v.size_tolerance,
        }
        if v.min_excess is not None:
            kw["min_excess"] = MappingProxyType({**_MIN_EXCESS, **v.min_excess})
        return cls(**kw)

    def override(self, doc: Any, source: str = "settings") -> ReconcileSettings:
        """These settings with the fields of a JSON object replaced (``--settings``)."""
        base = {k: getattr(self, k) for k in self.__dataclass_fields__}
        given = ReconcileSettings.from_json(doc, source)
        for k in doc:
            base[k] = getattr(given, k)
        return ReconcileSettings(**base)

    @classmethod
    def from_json(cls, doc: Any, source: str = "settings") -> ReconcileSettings:
        """Settings from a JSON object (unknown keys refused, so a typo is not ignored)."""
        if not isinstance(doc, dict):
            raise FormatError(f"{source}: reconcile settings are a JSON object")
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(doc) - known)
        if extra:
            raise FormatError(f"{source}, field {extra[0]!r}: not a reconcile setting")
        kw: dict[str, Any] = {}
        for k, v in doc.items():
            if k in ("min_excess", "formation_troops"):
                if not isinstance(v, dict) or not all(
                    isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v.values()
                ):
                    raise FormatError(f"{source}, field {k!r}: an object of integers >= 0")
                v = MappingProxyType(dict(v))
            elif k == "observed_categories":
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise FormatError(f"{source}, field {k!r}: a list of categories")
                v = tuple(v)
            kw[k] = v
        try:
            return cls(**kw)
        except TypeError as e:
            raise FormatError(f"{source}: {e}") from None
