"""Issue 13, items 6-8: quota outcomes that do not count, "immediately" as a labelled
convention, and the OSCE ICT contact-point duties, each from the text's paragraph.

Scenarios run through the pure engine on the bundled files (as test_bundled_agreements
does), and through ``quota_status``, which must give the same answer as the engine.
"""

from __future__ import annotations

from cbmnet.agreements.loader import bundled
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.quota import quota_status
from cbmnet.compliance.timeutil import parse_time
from tests.test_bundled_agreements import codes, exch, incident, note, req, resp, run, shift

OS = "open-skies-1992"
VD = "vienna-document-2011"
WTO = "wto-tbt"
ICT = "osce-ict-cbm-2016"
AS_OF = "2028-12-30T00:00:00Z"


def flight(i: str, frm: str, time: str, answer: str = "accept") -> list[dict]:
    """A flight request to Portugal (passive quota 2) and Portugal's answer an hour later."""
    return [
        req(i, frm, "PRT", time, "observation_flight"),
        resp(f"{i}-a", "PRT", i, shift(time, 3600), answer),
    ]


def prohibited(i: str, by: str, flight_id: str, time: str) -> dict:
    """Art. VIII §I ¶3: the facts of the prohibition, stated against the flight request."""
    return note(i, by, time, "flight_prohibition", request=flight_id)


# PRT's two flights accepted (GBR's and DEU's; not the USA's: it left the treaty in 2020),
# then CAN asks ten days later and is refused.
FULL = [*flight("f1", "GBR", "2028-03-01T00:00:00Z"), *flight("f2", "DEU", "2028-03-10T00:00:00Z")]
REFUSED = flight("f3", "CAN", "2028-03-25T00:00:00Z", "refuse")


def test_open_skies_prohibited_flight_does_not_count() -> None:
    """Art. VIII §I ¶3: "An observation flight that has been prohibited shall not be counted
    against the quota of either State Party." Before issue 13 it used PRT's quota, and the
    refusal of a third flight within the (not exhausted) quota went unreported."""
    m = "flight-quota"
    assert codes(run(OS, [*FULL, *REFUSED], AS_OF), m) == []  # 2 of 2: a lawful refusal
    ban = prohibited("p1", "PRT", "f1", "2028-03-02T00:00:00Z")
    assert codes(run(OS, [*FULL, ban, *REFUSED], AS_OF), m) == [("quota.refusal_within_quota", "PRT")]
    # A prohibition recorded after the refusal does not reach back: the refusal was lawful.
    late_ban = prohibited("p1", "PRT", "f1", "2028-03-26T00:00:00Z")
    assert codes(run(OS, [*FULL, late_ban, *REFUSED], AS_OF), m) == []


def test_open_skies_only_the_observed_party_prohibits() -> None:
    """The observing party's own record is a claim: the refusal it alone would make
    unlawful cannot be judged (info), never a finding nor silence."""
    claim = prohibited("p1", "GBR", "f1", "2028-03-02T00:00:00Z")
    report = run(OS, [*FULL, claim, *REFUSED], AS_OF)
    got = [f for f in report["findings"] if f["measure"] == "flight-quota"]
    assert [(f["code"], f["party"], f["severity"]) for f in got] == [
        ("data.unassessable", "PRT", "info")
    ]
    assert "f1" in got[0]["subjects"]


def test_open_skies_declined_flight_does_not_count() -> None:
    """Art. VIII §I ¶5: a flight the observing Party declines when no mission plan is agreed
    "shall not be recorded against the quota of either State Party"; ¶6: it explains its
    decision in the mission plan (a flight_declined record naming the flight request)."""
    m = "flight-quota"
    declined = note("d1", "GBR", "2028-03-02T00:00:00Z", "flight_declined", request="f1")
    assert codes(run(OS, [*FULL, declined, *REFUSED], AS_OF), m) == [
        ("quota.refusal_within_quota", "PRT")
    ]
    # Only the observing party declines: the observed party's own record is a claim.
    claim = note("d1", "PRT", "2028-03-02T00:00:00Z", "flight_declined", request="f1")
    assert codes(run(OS, [*FULL, claim, *REFUSED], AS_OF), m) == [("data.unassessable", "PRT")]


def test_open_skies_figures_read_in_the_text_are_no_longer_information_only() -> None:
    """Art. VI §I ¶¶5-6, read in the text: a notice 71 h before the ETA is late and an
    acknowledgement after 24 h is late: lapses, no longer information; the refusal within the passive
    quota stays information (the active quotas are not recorded)."""
    eta = "2028-03-10T12:00:00Z"
    flown = {"id": "fl", "type": "activity", "party": "GBR", "category": "flight",
             "start": eta, "end": shift(eta, 2 * 86_400), "size": {}}  # fmt: skip
    notice = note("fn", "GBR", shift(eta, -71 * 3600), "flight_notice", "fl")
    ask = req("fq", "GBR", "PRT", shift(eta, -71 * 3600), "observation_flight", activity="fl")
    ack = resp("fq-a", "PRT", "fq", shift(eta, -(71 - 25) * 3600), "accept")
    got = run(OS, [flown, notice, ask, ack], AS_OF)["findings"]
    sev = {(f["measure"], f["code"]): f["severity"] for f in got}
    assert sev[("flight-notice", "notification.late")] == "lapse", got
    assert sev[("flight-acknowledgement", "reply.late")] == "lapse", got
    refused = run(OS, [*FULL, prohibited("p1", "PRT", "f1", "2028-03-02T00:00:00Z"), *REFUSED], AS_OF)
    assert [f["severity"] for f in refused["findings"] if f["measure"] == "flight-quota"] == ["info"]


def test_quota_status_follows_the_same_rule() -> None:
    """The hub's pre-check replays the same book: after the prohibition PRT owes one more."""
    a = bundled(OS)
    at = parse_time("2028-03-20T00:00:00Z", "at")
    before = quota_status(a, parse_events(FULL), "PRT", "CAN", "observation_flight", at)
    assert before.exhausted and before.remaining_for_host == 0
    events = parse_events([*FULL, prohibited("p1", "PRT", "f1", "2028-03-02T00:00:00Z")])
    after = quota_status(a, events, "PRT", "CAN", "observation_flight", at)
    assert after.obliged and after.remaining_for_host == 1
    claimed = parse_events([*FULL, prohibited("p1", "GBR", "f1", "2028-03-02T00:00:00Z")])
    s = quota_status(a, claimed, "PRT", "CAN", "observation_flight", at)
    assert s.exhausted and s.caveat is not None and "f1" in s.caveat


def inspection(i: str, frm: str, time: str, answer: str = "accept") -> list[dict]:
    return [req(i, frm, "RUS", time, "inspection"), resp(f"{i}-a", "RUS", i, shift(time, 3600), answer)]


def test_vienna_document_force_majeure_inspection_does_not_count() -> None:
    """VD11 Ch. IX (issue 13's reading): an inspection not carried out because of force
    majeure does not count, so the next refusal within quota is reported."""
    m = "inspection-quota"
    three = [
        *inspection("i1", "DEU", "2028-02-01T00:00:00Z"),
        *inspection("i2", "FRA", "2028-03-01T00:00:00Z"),
        *inspection("i3", "GBR", "2028-04-01T00:00:00Z"),
    ]
    refused = inspection("i4", "USA", "2028-06-01T00:00:00Z", "refuse")
    assert codes(run(VD, [*three, *refused], AS_OF), m) == []  # 3 of 3
    fm = note("fm", "RUS", "2028-02-02T00:00:00Z", "force_majeure_report", request="i1")
    assert codes(run(VD, [*three, fm, *refused], AS_OF), m) == [("quota.refusal_within_quota", "RUS")]
    # The inspecting State's own record alone: the refusal cannot be judged.
    claim = note("fm", "DEU", "2028-02-02T00:00:00Z", "force_majeure_report", request="i1")
    assert codes(run(VD, [*three, claim, *refused], AS_OF), m) == [("data.unassessable", "RUS")]


def test_wto_emergency_regulation_notified_an_hour_after_adoption_is_no_violation() -> None:
    """TBT Art. 2.10.1: notified "immediately" upon adoption; an hour later is not late.
    Before issue 13 the notice was due at adoption itself and this was notification.late."""
    adopted = "2028-05-01T12:00:00Z"
    events = [
        incident("e", "CHN", adopted, "emergency_regulation"),
        note("n", "CHN", shift(adopted, 3600), "regulation_notice", "e"),
    ]
    report = run(WTO, events, AS_OF)
    assert report["findings"] == []
    ob = [o for o in report["obligations"] if o["id"].startswith("emergency-notice:")]
    assert [o["status"] for o in ob] == ["met"]
    # Past cbmnet's convention window: info, never a violation or a lapse.
    late = note("n", "CHN", shift(adopted, 3 * 86_400), "regulation_notice", "e")
    found = run(WTO, [events[0], late], AS_OF)["findings"]
    assert [(f["code"], f["severity"]) for f in found] == [("notification.late", "info")]
    assert "convention" in found[0]["message"]
    missing = run(WTO, [events[0]], AS_OF)["findings"]
    assert [(f["code"], f["severity"]) for f in missing] == [("notification.missing", "info")]


def test_ict_contact_point_change_notified_within_30_days() -> None:
    """PC.DEC/1106 CBM 8: changes notified no later than thirty days after the change."""
    m = "contact-point-change"
    changed = "2028-04-01T00:00:00Z"
    ch = incident("c", "AUT", changed, "contact_point_change")
    on_time = note("n", "AUT", shift(changed, 30 * 86_400), "contact_point_update", "c")
    assert codes(run(ICT, [ch, on_time], AS_OF), m) == []
    late = note("n", "AUT", shift(changed, 30 * 86_400 + 1), "contact_point_update", "c")
    assert codes(run(ICT, [ch, late], AS_OF), m) == [("notification.late", "AUT")]
    assert codes(run(ICT, [ch], AS_OF), m) == [("notification.missing", "AUT")]
    assert bundled(ICT).measures[1].provision == "PC.DEC/1106, CBM 8"


def test_ict_annual_contact_point_update() -> None:
    """PC.DEC/1106 CBM 8: contact information updated annually (by 31 December: cbmnet's
    reading of a text that names no date)."""
    m = "contact-point-annual-update"
    done = exch("u", "AUT", "2028-12-31T23:00:00Z", "contact_point", "2028")
    report = run(ICT, [done], "2029-01-02T00:00:00Z")
    assert ("exchange.missing", "AUT") not in codes(report, m)
    assert ("exchange.missing", "DEU") in codes(report, m)
    late = exch("u", "AUT", "2029-01-01T00:00:00Z", "contact_point", "2028")
    assert codes(run(ICT, [late], "2029-01-02T00:00:00Z"), m, "AUT") == [("exchange.late", "AUT")]


def test_ict_communication_check_window_is_a_convention() -> None:
    """No Decision sets a window for communication checks: the 24 h are cbmnet's, so an
    answer after them is info, not the lapse check.missed it used to be."""
    c = req("c", "OSCE", "AUT", "2028-03-01T09:00:00Z", "communication_check")
    assert run(ICT, [c, resp("a", "AUT", "c", "2028-03-02T09:00:00Z")], AS_OF)["findings"] == []
    late = run(ICT, [c, resp("a", "AUT", "c", "2028-03-02T09:00:01Z")], AS_OF)["findings"]
    assert [(f["code"], f["party"], f["severity"]) for f in late] == [("check.missed", "AUT", "info")]
    assert "2016" not in bundled(ICT).measures[0].provision


def test_in_pk_nuclear_list_change_is_owed_but_its_window_is_a_convention() -> None:
    """IN-PK 1988 Art. 2: each party informs the other "whenever there is any change". The
    text sets no period: a notice is owed on each recorded change, and a late or missing one
    is info under cbmnet's 30-day convention, never a violation."""
    nuc, m = "india-pakistan-nuclear-installations-1988", "list-change"
    changed = "2028-04-01T00:00:00Z"
    ch = incident("c", "PAK", changed, "nuclear_installation_change")
    told = note("n", "PAK", shift(changed, 10 * 86_400), "nuclear_installations_change", "c")
    assert codes(run(nuc, [ch, told], AS_OF), m) == []
    late = note("n", "PAK", shift(changed, 31 * 86_400), "nuclear_installations_change", "c")
    found = [f for f in run(nuc, [ch, late], AS_OF)["findings"] if f["measure"] == m]
    assert [(f["code"], f["party"], f["severity"]) for f in found] == [
        ("notification.late", "PAK", "info")
    ]
    assert "convention" in found[0]["message"]
    missing = [f for f in run(nuc, [ch], AS_OF)["findings"] if f["measure"] == m]
    assert [(f["code"], f["severity"]) for f in missing] == [("notification.missing", "info")]
