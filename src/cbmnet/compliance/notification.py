"""Notice duties: telling the other parties before (or soon after) something happens.

Prior notification, the invitation to observe, the one notice of the year, the annual
calendar, the announcement years ahead, the notice of an incident and of a missile launch.
Each is a notice to all owed by a date and met by the first one sent, so they share the
context's ``owed``; they differ in what starts the clock and who owes it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from cbmnet.agreements import model as am
from cbmnet.compliance.context import (
    Context,
    Result,
    end_of_day,
    finding,
    owed,
    settle,
    unassessable,
    undecided_findings,
)
from cbmnet.compliance.events import Event
from cbmnet.compliance.report import Finding, Obligation, Status
from cbmnet.compliance.timeutil import MS_PER_DAY, date_in_year, format_time, parse_duration, year_of


def _notice_owner(m: am.PriorNotification | am.ObservationInvitation, act: Event) -> str:
    """Who owes the notice: the activity's party, or under ``owed_by: host`` the State on
    whose territory it takes place (VD11 ¶39), the party where no ``host`` is given."""
    if getattr(m, "owed_by", "party") == "host":
        host = act.raw.get("host")
        if isinstance(host, str) and host:
            return host
    return act.party


def _one_of_year(
    ctx: Context,
    m: am.PriorNotification,
    owner: str,
    year: int,
    acts: list[tuple[Event, int]],
    codes: tuple[str, str],
    what: str,
) -> tuple[Obligation, list[Finding]]:
    """One activity of the year, of the owner's choosing, is owed a notice (US-USSR 1989
    Art. I): any one on-time notice meets the duty. Until the year is over another
    activity may still be notified, so it is missed (or late) only after 31 December."""
    subjects = tuple(a.id for a, _ in acts)
    on_time: tuple[Event, int] | None = None
    late: tuple[Event, int] | None = None
    for act, due in acts:
        sent = ctx.notices.get((owner, m.form, act.id))
        if not sent:
            continue
        n = sent[0]
        pick = (n, due)
        if n.time <= due:
            if on_time is None or (n.time, n.id) < (on_time[0].time, on_time[0].id):
                on_time = pick
        elif late is None or (n.time, n.id) < (late[0].time, late[0].id):
            late = pick
    year_end = date_in_year(year + 1, "01-01", m.id) - 1
    status: Status
    if on_time is not None:
        status, due, met_by = "met", on_time[1], on_time[0]
    elif year_end >= ctx.as_of:
        status, due, met_by = "pending", year_end, None
    elif late is not None:
        status, due, met_by = "late", late[1], late[0]
    else:
        status, due, met_by = "missed", year_end, None
    ob = Obligation(
        id=f"{m.id}:{owner}:{year}",
        party=owner,
        provision=m.provision,
        kind=m.rule,
        due=due,
        status=status,
        met_by=met_by.id if met_by is not None else None,
        subjects=subjects,
    )
    listed = ", ".join(subjects)
    if status == "missed":
        msg = f"{what} of one of {owner}'s {year} activities in scope ({listed}) never came"
        return ob, [finding(m, codes[0], owner, subjects, due, msg, str(year))]
    if status == "late" and met_by is not None:
        msg = (
            f"no {year} activity of {owner} in scope ({listed}) was notified in time: "
            f"the first notice came {format_time(met_by.time)}, due {format_time(due)}"
        )
        return ob, [finding(m, codes[1], owner, [*subjects, met_by.id], due, msg, str(year))]
    return ob, []


def _notice_rule(missing: str, late: str, what: str) -> Callable[[Any, Context], Result]:
    """Prior notification and observation invitation: same shape, different codes."""

    def rule(m: am.PriorNotification | am.ObservationInvitation, ctx: Context) -> Result:
        lead = parse_duration(m.lead, "lead")
        obs, finds = [], []
        longer = getattr(m, "alert_longer_than", None)
        min_alert_ms = parse_duration(longer, "alert_longer_than") if longer else None
        from_date = getattr(m, "lead_from", "start") == "start_utc_date"
        notify = getattr(m, "notify", "each")
        per_year: dict[tuple[str, int], list[tuple[Event, int]]] = defaultdict(list)
        for act in ctx.scoped(m.scope):
            assert act.start is not None and act.end is not None
            if min_alert_ms is not None and act.raw.get("alert") and act.end - act.start <= min_alert_ms:
                continue  # a short alert activity: nothing owed under this measure
            owner = _notice_owner(m, act)
            if not ctx.member(owner, act.start):
                continue  # the host is not bound by this agreement (on that date)
            alert = bool(act.raw.get("alert")) and m.alert_exempt
            # The lead runs back from the start, or from 00:00 UTC of the start's date.
            anchor = act.start - act.start % MS_PER_DAY if from_date else act.start
            due = act.start if alert else anchor - lead
            if notify != "each":
                per_year[(owner, year_of(act.start))].append((act, due))
                continue
            sent = ctx.notices.get((owner, m.form, act.id))
            first = sent[0] if sent else None
            ob, found = owed(ctx, m, owner, act, due, first, (missing, late), f"{what} for {act.id}")
            obs.append(ob)
            finds.extend(found)
        for (owner, year), acts in sorted(per_year.items()):
            acts.sort(key=lambda x: (x[0].start or 0, x[0].id))
            if notify == "first_of_year":
                act, due = acts[0]
                sent = ctx.notices.get((owner, m.form, act.id))
                first = sent[0] if sent else None
                what_first = f"{what} for {act.id}, the first of {year}"
                ob, found = owed(ctx, m, owner, act, due, first, (missing, late), what_first)
            else:
                assert isinstance(m, am.PriorNotification)
                ob, found = _one_of_year(ctx, m, owner, year, acts, (missing, late), what)
            obs.append(ob)
            finds.extend(found)
        finds.extend(undecided_findings(ctx, m, m.scope, lambda a: _notice_owner(m, a)))
        return obs, finds

    return rule


prior_notification = _notice_rule("notification.missing", "notification.late", "prior notification")
observation_invitation = _notice_rule(
    "observation.invitation_missing", "observation.invitation_late", "observer invitation"
)


def annual_calendar(m: am.AnnualCalendar, ctx: Context) -> Result:
    """Each activity in scope listed in its year's calendar by the date the measure sets."""
    obs, finds = [], []
    for act in ctx.scoped(m.scope):
        if m.alert_exempt and act.raw.get("alert"):
            continue
        assert act.start is not None
        year = year_of(act.start)
        due = end_of_day(date_in_year(year + m.due_year_offset, m.due, m.id))
        listed = [c for c in ctx.calendars.get((act.party, m.form, year), []) if act.id in ctx.listed(c)]
        first = listed[0] if listed else None
        ob, status = settle(ctx, m, act.party, f"{act.id}:{year}", due, first, (act.id,))
        obs.append(ob)
        if status in ("missed", "late"):
            when = f" (it appeared only {format_time(first.time)})" if first else ""
            finds.append(
                finding(
                    m,
                    "calendar.missing",
                    act.party,
                    [act.id] + ([first.id] if first else []),
                    due,
                    f"{act.id} is not in the {year} calendar due {format_time(due)}{when}",
                    str(year),
                )
            )
    finds.extend(undecided_findings(ctx, m, m.scope, lambda a: a.party))
    return obs, finds


def advance_announcement(m: am.AdvanceAnnouncement, ctx: Context) -> Result:
    """Each activity in scope announced ``years_ahead``; a calendar listing it counts too."""
    obs, finds = [], []
    for act in ctx.scoped(m.scope):
        assert act.start is not None
        year = year_of(act.start)
        due = end_of_day(date_in_year(year - m.years_ahead, m.due, m.id))
        announced = [
            n
            for form in (m.form, "annual_calendar")
            for n in ctx.notices.get((act.party, form, act.id), [])
        ]
        announced.sort(key=lambda n: (n.time, n.id))
        first = announced[0] if announced else None
        ob, status = settle(ctx, m, act.party, act.id, due, first, (act.id,))
        obs.append(ob)
        if status in ("missed", "late"):
            finds.append(
                finding(
                    m,
                    "announcement.missing",
                    act.party,
                    [act.id],
                    due,
                    f"{act.id} ({year}) needed an announcement by {format_time(due)}, "
                    f"{m.years_ahead} year(s) ahead",
                )
            )
    finds.extend(undecided_findings(ctx, m, m.scope, lambda a: a.party))
    return obs, finds


def event_notification(m: am.EventNotification, ctx: Context) -> Result:
    """A notice owed ``within`` of each incident; a convention window (the text says
    "immediately") only ever gives info findings."""
    obs, finds = [], []
    within = parse_duration(m.within, "within")
    codes = ("notification.missing", "notification.late")
    for inc in ctx.by_type["incident"]:
        if inc.raw.get("kind") not in m.incident_kinds or not ctx.member(inc.party, inc.time):
            continue
        due = inc.time + within
        sent = ctx.notices.get((inc.party, m.form, inc.id))
        ob, found = owed(
            ctx,
            m,
            inc.party,
            inc,
            due,
            sent[0] if sent else None,
            codes,
            f"{m.form} for {inc.id}" + (f" (cbmnet's {m.within} convention)" if m.convention else ""),
        )
        obs.append(ob)
        finds.extend(found)
    return obs, finds


def _launch_finding(
    m: am.LaunchNotification,
    provision: str,
    code: str,
    party: str,
    subjects: Iterable[str],
    due: int | None,
    message: str,
    unconfirmed: str | None = None,
) -> Finding:
    """A finding under one article of a launch measure: each distance and notice item cites
    its own, and is unconfirmed (severity info) only when its own text is not settled; the
    measure's ``unconfirmed`` speaks of the notice's timing, not of these items."""
    return Finding(
        code, party, provision, tuple(subjects), due, message, None, m.id, unconfirmed=unconfirmed
    )


def _launch_covered(m: am.LaunchNotification, act: Event) -> bool | None:
    """Does the measure cover this launch? None where it cannot tell: with a closed list
    of classes (``excluded_classes``), a class in neither list, or none given."""
    cls = act.raw.get("missile_class")
    if not m.missile_classes or cls in m.missile_classes:
        return True
    if not m.excluded_classes or cls in m.excluded_classes:
        return False
    return None


def _launch_content(m: am.LaunchNotification, act: Event, notice: Event, due: int) -> list[Finding]:
    """What the notice must say and does not (``content``): it came, but not in full. One
    finding per item, under the provision that requires it."""
    finds = []
    for c in m.content:
        if c.missile_classes and act.raw.get("missile_class") not in c.missile_classes:
            continue
        if c.item == "window" and (notice.start is None or notice.end is None):
            what = "its launch window (window_start, window_end)"
        elif c.item == "impact" and notice.raw.get("impact") is None:
            what = "the planned impact area (impact)"
        elif c.item == "launch" and notice.raw.get("launch") is None:
            what = "the launch area (launch)"
        else:
            continue
        msg = f"notice {notice.id} of launch {act.id} does not give {what}"
        code, ids = "notification.incomplete", [act.id, notice.id]
        finds.append(_launch_finding(m, c.provision, code, act.party, ids, due, msg, c.unconfirmed))
    return finds


_LAUNCH_SUBJECT = {"launch": "launch point", "trajectory": "trajectory", "impact": "planned impact area"}


def _launch_distances(
    m: am.LaunchNotification, ctx: Context, act: Event, notice: Event | None
) -> list[Finding]:
    """Each of ``distances``: the launch point and trajectory as the activity records them,
    the impact area as the notice plans it. Where the field (or the notice) is missing,
    ``data.unassessable`` naming it: never silence, never a guess from other fields."""
    finds = []
    for rule in m.distances:
        assert m.zone is not None
        what = _LAUNCH_SUBJECT[rule.subject]
        src = notice if rule.subject == "impact" else act
        d = ctx.distance_km(src, rule.subject, m.zone) if src is not None else None
        if d is None:
            holder = f"{src.id} has no" if src is not None else "no notice gives its"
            msg = f"{act.id} cannot be judged under {m.id} ({rule.provision}): "
            msg += f"{holder} {what} ({rule.subject})"
            code = "data.unassessable"
            finds.append(_launch_finding(m, rule.provision, code, act.party, [act.id], act.start, msg))
            continue
        if d == 0.0 or d < rule.min_distance_km:
            where = (
                f"touches or crosses {m.zone}"
                if d == 0.0
                else f"{d:.1f} km from {m.zone}, closer than {rule.min_distance_km:g} km"
            )
            assert src is not None  # a distance was measured on it
            ids = [act.id] if src is act else [act.id, src.id]
            msg, code = f"{act.id}: {what} {where}", "constraint.zone_violation"
            finds.append(_launch_finding(m, rule.provision, code, act.party, ids, act.start, msg))
    return finds


def launch_notification(m: am.LaunchNotification, ctx: Context) -> Result:
    """Notice before the window, the window itself, what the notice says, and where the
    launch, its trajectory and its planned impact lie (each with the article it rests on)."""
    obs, finds = [], []
    lead = parse_duration(m.lead, "lead")
    max_window = parse_duration(m.max_window, "max_window") if m.max_window else None
    for act in ctx.activities():
        if act.raw.get("category") != "missile_launch":
            continue
        covered = _launch_covered(m, act)
        if covered is None:
            cls = act.raw.get("missile_class")
            why = f"missile_class {cls!r} is neither covered nor excluded" if cls else "no missile_class"
            msg = f"{act.id} cannot be judged under {m.id}: {why}"
            finds.append(unassessable(m, act.party, (act.id,), act.start, msg))
            continue
        if not covered:
            continue
        assert act.start is not None
        sent = ctx.notices.get((act.party, m.form, act.id))
        first = sent[0] if sent else None
        w_start = first.start if first is not None and first.start is not None else None
        # A notice cannot move its own deadline past the launch by declaring a later window.
        due = (min(w_start, act.start) if w_start is not None else act.start) - lead
        ob, found = owed(
            ctx,
            m,
            act.party,
            act,
            due,
            first,
            ("notification.missing", "notification.late"),
            f"notice of launch {act.id}",
        )
        obs.append(ob)
        finds.extend(found)
        if first is not None and first.start is not None and first.end is not None:
            if not first.start <= act.start <= first.end:
                finds.append(
                    finding(
                        m,
                        "launch.outside_window",
                        act.party,
                        [act.id, first.id],
                        first.start,
                        f"launch {act.id} at {format_time(act.start)} is outside its declared window",
                    )
                )
            if max_window is not None and first.end - first.start > max_window:
                finds.append(
                    finding(
                        m,
                        "launch.window_too_long",
                        act.party,
                        [act.id, first.id],
                        first.start,
                        f"declared window for {act.id} is longer than {m.max_window}",
                    )
                )
        if first is not None:
            finds.extend(_launch_content(m, act, first, due))
        finds.extend(_launch_distances(m, ctx, act, first))
    return obs, finds
