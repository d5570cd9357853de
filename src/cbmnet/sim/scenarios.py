"""Bundled scenarios: seeded plans of exercise traffic and the findings they must produce.

A plan is pure data, computed from (seed, parties, days, anchor) only, so the same seed
gives the same acts; the player adds only what the hub decides (times, indices). Declared
dates are counted from ``anchor`` (midnight UTC of the run's day) plus the simulated day
of the step, so activities lie in the simulated future of the notifications that cover
them. Rates come from the published figures in ``shared/brief/regimes.md`` (cited where
used); where the brief has no rate for a behaviour, a deterministic case is planted so the
finding it must cause is always there, and the random draws only add to it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cbmnet.compliance.timeutil import format_time

DAY_MS = 86_400_000
VD = "vienna-document-2011"
ICT = "osce-ict-cbm-2016"
IP_EXERCISES = "india-pakistan-military-exercises-1991"
IP_MISSILES = "india-pakistan-missile-tests-2005"
IP_NUCLEAR = "india-pakistan-nuclear-installations-1988"

# --- published figures (shared/brief/regimes.md) ------------------------------------------
POC_REACHABLE = 0.98
"""§8 / §6: 98 % of OSCE pS have nominated a point of contact (CBM 8, June 2024, S83):
taken as the share of communication checks and routine hotline messages answered."""
NUCLEAR_LIST_ON_TIME = 34 / 34
"""§2.1 / §8: the India-Pakistan nuclear installations lists were exchanged on 1 January
34 times out of 34 (1992-2025, S24, S25): the simulated exchange is never late."""
EXCHANGE_PARTICIPATION = 0.46
"""§8: BWC CBM participation 46 % (2016, S76-S78), the only published participation rate
for an annual exchange in the brief; used as the share of on-time exchanges beyond the
first State (the VD annual exchange has no published rate)."""
NOTIFICATION_LATE = 0.15
NOTIFICATION_MISSING = 0.10
"""The brief publishes no rate of late or missing VD prior notifications; §1.11 records
the 2017 case of an exercise above 9,000 troops notified to nobody (S16) and the 2022
Ch. III reply missed (§1.3, S12). These two rates are placeholders for draws beyond the
planted cases (one late, one missing), which alone the tests rely on."""


@dataclass(frozen=True)
class Step:
    """One thing one actor does on simulated day ``day``."""

    day: float
    actor: str
    """A party id or ``secretariat``."""
    kind: str
    """event, ack, channel, hotline, inspection, observations, witness."""
    doc: dict[str, Any]


@dataclass
class Plan:
    """A scenario ready to play: who takes part, what they do, what it must produce."""

    scenario: str
    seed: int
    parties: list[str]
    agreements: list[str]
    anchor_ms: int
    steps: list[Step] = field(default_factory=list)
    expected: list[dict[str, str]] = field(default_factory=list)
    """Each: code, party, agreement, subject (an event id, or a hotline message id)."""
    names: dict[str, str] = field(default_factory=dict)

    def add(self, day: float, actor: str, what: str, /, **doc: Any) -> None:
        self.steps.append(Step(round(day, 4), actor, what, doc))

    def event(
        self, day: float, actor: str, agreement: str, eid: str, typ: str, body: str, /, **f: Any
    ) -> str:
        """An events-v1 event, marked as exercise data in the record itself."""
        doc = {"agreement": agreement, "id": eid, "type": typ, "exercise": True}
        doc["body"] = f"EXERCISE EXERCISE EXERCISE. {body}"
        self.add(day, actor, "event", **doc, **f)
        return eid

    def iso(self, day: float) -> str:
        return format_time(self.anchor_ms + int(day * DAY_MS))

    def expect(self, code: str, party: str, agreement: str, subject: str) -> None:
        self.expected.append({"code": code, "party": party, "agreement": agreement, "subject": subject})


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(lon, 4), round(lat, 4)]}


def _box(lon: float, lat: float, half_deg: float) -> dict[str, Any]:
    w, e, s, n = (round(v, 4) for v in (lon - half_deg, lon + half_deg, lat - half_deg, lat + half_deg))
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _observations(
    rng: random.Random,
    prefix: str,
    forces: list[tuple[float, float, int, int]],
    start_ms: int,
    days: int,
) -> str:
    """CSV rows: each force (lon, lat, troops, tanks) seen daily by a satellite and an
    aircraft with jitter and misses, plus scattered low-confidence noise."""
    rows = ["id,time,lon,lat,sensor_id,sensor_kind,object_class,count,confidence"]
    n = 0

    def row(
        t: int, lon: float, lat: float, sensor: str, kind: str, cls: str, count: int, conf: float
    ) -> None:
        nonlocal n
        n += 1
        rows.append(
            f"{prefix}-o{n},{format_time(t)},{lon:.5f},{lat:.5f},{sensor},{kind},{cls},{count},{conf:.3f}"
        )

    for d in range(days):
        for lon, lat, troops, tanks in forces:
            for sensor, kind, hour in (("sat-1", "satellite", 10), ("air-1", "aerial", 14)):
                t = start_ms + d * DAY_MS + hour * 3_600_000
                for _ in range(max(1, troops // 1000)):
                    if rng.random() < 0.1:  # a unit missed now and then
                        continue
                    dx, dy = rng.gauss(0, 0.05), rng.gauss(0, 0.05)
                    row(t, lon + dx, lat + dy, sensor, kind, "troops", 1000, rng.uniform(0.85, 1.0))
                for _ in range(max(0, tanks // 50)):
                    dx, dy = rng.gauss(0, 0.05), rng.gauss(0, 0.05)
                    row(t, lon + dx, lat + dy, sensor, kind, "battle_tank", 50, rng.uniform(0.85, 1.0))
        for _ in range(3):  # noise: scattered, low confidence
            lon, lat, *_ = forces[rng.randrange(len(forces))]
            t = start_ms + d * DAY_MS + rng.randrange(DAY_MS)
            row(
                t,
                lon + rng.uniform(-1, 1),
                lat + rng.uniform(-1, 1),
                "gnd-1",
                "ground",
                "acv",
                1,
                rng.uniform(0.1, 0.4),
            )
    return "\n".join(rows) + "\n"


# Rough interior points (lon, lat) of the first VD participating States, for areas only.
_PLACES = {
    "ALB": (20.0, 41.2), "AND": (1.55, 42.55), "ARM": (44.8, 40.2), "AUT": (14.5, 47.5),
    "AZE": (48.5, 40.3), "BLR": (27.9, 53.7), "BEL": (4.6, 50.6), "BIH": (17.8, 44.0),
    "BGR": (25.3, 42.7), "CAN": (-75.0, 46.0),
}  # fmt: skip


def vienna_document(seed: int, parties: list[str], days: int, anchor_ms: int) -> Plan:
    """Several pS: calendars, exchange, notifications (one late, one missing planted),
    hotline with one silence, a Ch. III consultation, inspections within and beyond quota,
    communication checks with one miss, witnesses, observations with an undeclared force."""
    if len(parties) < 3:
        raise ValueError("the vienna-document scenario needs at least 3 parties")
    rng = random.Random(seed)  # noqa: S311 - a seeded plan, no secrets
    p = Plan("vienna-document", seed, parties, [VD, ICT], anchor_ms)
    x = f"s{seed}"
    half = max(days / 2, 1.0)
    acts: dict[str, list[str]] = {q: [] for q in parties}
    plans: list[tuple[str, str, float, float, int]] = []  # party, id, start day, lead, troops
    for i, q in enumerate(parties):
        for k in range(2):
            aid = f"{x}-{q.lower()}-act{k + 1}"
            troops = rng.choice((9500, 11000, 14000, 16000))
            if i == 0 and k == 0:
                lead = 20.0  # planted: notified 20 days ahead, not 42 (VD11 Ch. V)
            elif i == 1 and k == 0:
                lead = -1.0  # planted: never notified
            else:
                r = rng.random()
                lead = (
                    20.0
                    if r < NOTIFICATION_LATE
                    else -1.0
                    if r < NOTIFICATION_LATE + NOTIFICATION_MISSING
                    else 45.0 + rng.randrange(30)
                )
            plans.append((q, aid, rng.uniform(0, half), lead, troops))
            acts[q].append(aid)
    # Annual calendars for next year (VD11 Ch. VII, by 15 November) and the annual exchange.
    for q in parties:
        p.event(
            0.0,
            q,
            VD,
            f"{x}-{q.lower()}-cal",
            "notification",
            f"Annual calendar of {q}.",
            form="annual_calendar",
            year=int(p.iso(0)[:4]) + 1,
            activities=[],
        )
        if q == parties[0] or rng.random() < EXCHANGE_PARTICIPATION:
            p.event(
                0.1,
                q,
                VD,
                f"{x}-{q.lower()}-aemi",
                "exchange",
                f"Annual exchange of {q}.",
                form="annual_military_information",
                period=str(int(p.iso(0)[:4]) + 1),
                units=rng.randrange(20, 200),
            )
    for q, aid, day, lead, troops in plans:
        lon, lat = _PLACES.get(q, (10.0, 50.0))
        start = day + (lead if lead > 0 else 60.0)
        p.event(
            day,
            q,
            VD,
            aid,
            "activity",
            f"Land exercise of {q}, {troops:,} troops.",
            start=p.iso(start),
            end=p.iso(start + 5),
            category="land",
            size={"troops": troops},
            location=_box(lon, lat, 0.3),
        )
        if lead < 0:
            p.expect("notification.missing", q, VD, aid)
            continue
        note = p.event(
            day + 0.01,
            q,
            VD,
            f"{aid}-n",
            "notification",
            f"Prior notification of {aid}.",
            form="prior_notification",
            activity=aid,
        )
        if lead < 42:
            p.expect("notification.late", q, VD, aid)
        if troops >= 13000:
            p.event(
                day + 0.02,
                q,
                VD,
                f"{aid}-inv",
                "notification",
                f"Observers invited to {aid}.",
                form="observation_invitation",
                activity=aid,
            )
        for other in parties:
            if other != q and rng.random() < 0.5:
                p.add(day + 0.03, other, "ack", ref=note)
    # Hotline among all: routine traffic, acknowledged except one planted silence.
    a, b, c = parties[0], parties[1], parties[2]
    p.add(0.2, a, "channel", channel=f"{x}-vd-net", agreement=VD, members=list(parties))
    for q in parties[1:]:
        p.add(0.21, q, "ack", ref=f"channel:{x}-vd-net")
    n_msgs = max(3, days // 2)
    for m in range(n_msgs):
        sender = parties[m % len(parties)]
        mid = f"{x}-msg{m + 1}"
        prec = rng.choice(("routine", "routine", "priority", "immediate"))
        p.add(
            0.3 + m * (half / n_msgs),
            sender,
            "hotline",
            channel=f"{x}-vd-net",
            id=mid,
            precedence=prec,
            text=f"EXERCISE EXERCISE EXERCISE. Message {m + 1} from {sender}.",
        )
        for q in parties:
            if q == sender:
                continue
            silent = (m == 0 and q == c) or rng.random() > POC_REACHABLE
            if silent:
                p.expect("hotline.no_answer", q, VD, mid)
            else:
                p.add(0.31 + m * (half / n_msgs), q, "ack", ref=mid)
    # Ch. III consultation: b asks a to explain its first activity; a answers within 48 h.
    asked = next(t[2] for t in plans if t[1] == acts[a][0]) + 0.1
    req = p.event(
        asked,
        b,
        VD,
        f"{x}-why-1",
        "request",
        f"{b} asks {a} to explain unusual activities.",
        kind="explanation",
        to=a,
        activity=acts[a][0],
    )
    p.event(
        asked + 0.2, a, VD, f"{x}-why-1-r", "response", f"{a} explains.", request=req, decision="answer"
    )
    # Ch. IX inspections of c: quota 3 a year, one per inspecting State; the host accepts
    # when obliged except one planted refusal within quota, and refuses beyond quota.
    inspectors = [q for q in parties if q != c]
    for k, q in enumerate([*inspectors, inspectors[0]]):
        lon, lat = _PLACES.get(c, (10.0, 50.0))
        policy = "refuse" if k == 1 else "auto"
        rid = f"{x}-insp{k + 1}"
        p.add(
            2.0 + k * 0.1,
            q,
            "inspection",
            host=c,
            policy=policy,
            request={
                "agreement": VD,
                "id": rid,
                "type": "request",
                "kind": "inspection",
                "to": c,
                "area": _box(lon, lat, 0.2),
                "exercise": True,
                "body": f"EXERCISE EXERCISE EXERCISE. {q} requests an inspection in {c}.",
            },
        )
        if policy == "refuse":
            p.expect("quota.refusal_within_quota", c, VD, rid)
    # Communication checks (OSCE ICT CBM 8: POCs reachable), one planted miss.
    for k, q in enumerate(parties):
        cid = p.event(
            3.0,
            "secretariat",
            ICT,
            f"{x}-check-{q.lower()}",
            "request",
            "Communication check: please answer this request.",
            kind="communication_check",
            to=q,
        )
        if k == len(parties) - 1 or rng.random() > POC_REACHABLE:
            p.expect("check.missed", q, ICT, cid)
        else:
            p.event(
                3.1, q, ICT, f"{cid}-r", "response", "Check answered.", request=cid, decision="answer"
            )
    # Sensor observations by a's national means: a declared force and an undeclared one.
    first = next(t for t in plans if t[0] == b)
    blon, blat = _PLACES.get(b, (10.0, 50.0))
    start_ms = anchor_ms + int((first[2] + 60.0) * DAY_MS)
    csv = _observations(
        rng, f"{x}-b1", [(blon, blat, first[4], 0), (blon + 1.5, blat + 0.5, 12000, 300)], start_ms, 3
    )
    p.add(4.0, a, "observations", agreement=VD, batch=f"{x}-obs-1", csv=csv)
    p.expect("discrepancy.undeclared_activity", b, VD, f"{x}-obs-1")
    p.add(max(half, 4.5), "secretariat", "witness", parties=parties[:3])
    p.steps.sort(key=lambda s: s.day)
    return p


def india_pakistan(seed: int, parties: list[str], days: int, anchor_ms: int) -> Plan:  # noqa: ARG001
    """Exercises near the border (one notified late), a missile test window, the 1 January
    nuclear installations lists, and the DGMO hotline's weekly contact with one week silent."""
    rng = random.Random(seed)  # noqa: S311 - a seeded plan, no secrets
    # Bilateral: always both parties, whatever --parties says.
    p = Plan("india-pakistan", seed, ["IND", "PAK"], [IP_EXERCISES, IP_MISSILES, IP_NUCLEAR], anchor_ms)
    p.names = {"IND": "Republic of India", "PAK": "Islamic Republic of Pakistan"}
    x = f"s{seed}"
    # Exercises within 75 km of the IB: corps level needs 60 days' notice (S26-S28).
    for q, (lon, lat), lead in (
        ("IND", (74.9, 31.2), 65.0 + rng.randrange(20)),
        ("PAK", (74.1, 31.4), 30.0),
    ):
        aid = f"{x}-{q.lower()}-ex1"
        troops = rng.choice((35000, 40000, 45000))
        p.event(
            0.0,
            q,
            IP_EXERCISES,
            aid,
            "activity",
            f"Corps exercise of {q}, {troops:,} troops.",
            start=p.iso(lead),
            end=p.iso(lead + 6),
            category="land",
            formation="corps",
            size={"troops": troops},
            location=_point(lon, lat),
        )
        note = p.event(
            0.05,
            q,
            IP_EXERCISES,
            f"{aid}-n",
            "notification",
            f"Notice of {aid}.",
            form="exercise_notice",
            activity=aid,
        )
        if lead < 60:
            p.expect("notification.late", q, IP_EXERCISES, aid)
        p.add(0.1, "PAK" if q == "IND" else "IND", "ack", ref=note)
    # Missile test: a launch window at least 3 days ahead (2005 agreement).
    w = 4.0 + rng.randrange(4)
    # The test, as the testing Party records it (inside the window it notifies): launched
    # from the Makran coast, ~230 km from the IB, into the notified impact area; the
    # trajectory keeps clear of the IB (Arts. 5-6).
    p.event(
        0.49,
        "PAK",
        IP_MISSILES,
        f"{x}-pak-launch1-test",
        "activity",
        "Surface-to-surface ballistic missile flight test.",
        category="missile_launch",
        missile_class="srbm",
        start=p.iso(w + 0.5),
        end=p.iso(w + 0.51),
        launch=_point(66.75, 25.2),
        impact=_point(63.1, 21.6),
        trajectory={"type": "LineString", "coordinates": [[66.75, 25.2], [64.9, 23.4], [63.1, 21.6]]},
    )
    p.event(
        0.5,
        "PAK",
        IP_MISSILES,
        f"{x}-pak-launch1",
        "notification",
        "Surface-to-surface ballistic missile test, impact area in the Arabian Sea.",
        form="launch_notification",
        window_start=p.iso(w),
        window_end=p.iso(w + 3),
        impact=_box(63.0, 21.5, 0.5),
        activity=f"{x}-pak-launch1-test",
    )
    p.add(0.55, "IND", "ack", ref=f"{x}-pak-launch1")
    # 1 January lists of nuclear installations, for next year (34 of 34 on time, S24).
    year = str(int(p.iso(0)[:4]) + 1)
    for q in ("IND", "PAK"):
        if rng.random() <= NUCLEAR_LIST_ON_TIME:
            p.event(
                0.6,
                q,
                IP_NUCLEAR,
                f"{x}-{q.lower()}-nuc{year}",
                "exchange",
                f"List of nuclear installations of {q} for {year}.",
                form="nuclear_installations_list",
                period=year,
            )
    # The DGMO hotline: one scheduled contact a week (Dec 1990, S41); one week unanswered.
    p.add(0.7, "IND", "channel", channel=f"{x}-dgmo", agreement=IP_EXERCISES, members=["IND", "PAK"])
    p.add(0.71, "PAK", "ack", ref=f"channel:{x}-dgmo")
    for wk in range(max(2, math.ceil(days / 7))):
        sender = ("IND", "PAK")[wk % 2]
        other = "PAK" if sender == "IND" else "IND"
        mid = f"{x}-dgmo-w{wk + 1}"
        day = 1.0 + wk * 7 * min(1.0, days / (7 * max(2, math.ceil(days / 7))))
        p.add(
            day,
            sender,
            "hotline",
            channel=f"{x}-dgmo",
            id=mid,
            precedence="routine",
            text=f"EXERCISE EXERCISE EXERCISE. DGMO weekly contact, week {wk + 1}, from {sender}.",
        )
        if wk == 1 or rng.random() > POC_REACHABLE:
            p.expect("hotline.no_answer", other, IP_EXERCISES, mid)
        else:
            p.add(day + 0.01, other, "ack", ref=mid)
    p.add(max(days / 2, 1.5), "secretariat", "witness", parties=["IND", "PAK"])
    p.steps.sort(key=lambda s: s.day)
    return p


SCENARIOS: dict[str, tuple[Callable[[int, list[str], int, int], Plan], str, int]] = {
    "vienna-document": (vienna_document, VD, 5),
    "india-pakistan": (india_pakistan, IP_EXERCISES, 2),
}
"""Name -> (builder, agreement whose party list is used, default party count)."""


def build(name: str, seed: int, *, parties: int | None = None, days: int = 14, anchor_ms: int) -> Plan:
    """The plan of scenario ``name``: the first ``parties`` parties of its agreement."""
    from cbmnet.agreements.loader import bundled

    if name not in SCENARIOS:
        raise ValueError(f"no scenario {name!r}; bundled: {', '.join(SCENARIOS)}")
    builder, agreement, default = SCENARIOS[name]
    everyone = list(bundled(agreement).parties)
    chosen = everyone[: max(1, parties or default)]
    return builder(seed, chosen, max(1, days), anchor_ms)
