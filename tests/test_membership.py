"""Issue 13, item 9: membership over time.

A State is bound from the day it joined until the day its withdrawal took effect. "To all"
means to all members on the notice's date, and an event by a State that is not a member on
its date (or an activity hosted by one) is bad input: ``cbmnet check`` exits 2 naming the
file, record and field, and the hub refuses it in the same words. Before, such an event
was ignored without a word, and a notice to the parties left after 2021 failed "to all".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cbmnet.acts.model import PT_EVENT
from cbmnet.agreements.loader import bundled
from cbmnet.agreements.model import Agreement
from cbmnet.compliance.engine import evaluate
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.timeutil import parse_time
from tests.hubkit import TestHub, running_hub

OS = "open-skies-1992"
CLI = [sys.executable, "-m", "cbmnet.cli.main"]
AS_OF = "2029-01-01T00:00:00Z"


def ms(text: str) -> int:
    return parse_time(text, "t")


# ---- the model ----------------------------------------------------------------------------


def test_open_skies_members_on_each_side_of_the_withdrawals() -> None:
    """USA: no longer a party from 22 Nov 2020; Russia from 18 Dec 2021 (sources in the file)."""
    skies = bundled(OS)
    assert {"USA", "RUS"} <= skies.members_on(ms("2020-11-21T23:59:59Z"))
    assert "USA" not in skies.members_on(ms("2020-11-22T00:00:00Z"))
    assert "RUS" in skies.members_on(ms("2021-12-17T23:59:59Z"))
    assert "RUS" not in skies.members_on(ms("2021-12-18T00:00:00Z"))
    after = skies.members_on(ms("2028-01-01T00:00:00Z"))
    assert after == frozenset(skies.parties) - {"USA", "RUS"}
    assert "USA" in skies.parties  # still listed: it was a party, and may register
    assert not skies.parties_complete


def test_membership_names_only_parties_and_leaves_after_joining() -> None:
    base: dict[str, Any] = {
        "id": "x",
        "title": "t",
        "version": "1",
        "parties": ["AAA", "BBB"],
        "measures": [],
    }
    with pytest.raises(ValidationError, match="membership: CCC not in 'parties'"):
        Agreement.model_validate(base | {"membership": {"CCC": {"joined": "2001-01-01"}}})
    with pytest.raises(ValidationError, match="'left' must be after 'joined'"):
        Agreement.model_validate(
            base | {"membership": {"AAA": {"joined": "2001-01-01", "left": "2001-01-01"}}}
        )
    plain = Agreement.model_validate(base)
    assert plain.members_on(0) == {"AAA", "BBB"} and plain.parties_complete


# ---- the engine ---------------------------------------------------------------------------


def test_a_notice_to_the_parties_left_after_2021_is_to_all() -> None:
    """An explanation of a prohibited flight (to all parties, 7 days) addressed by name to
    every party that remains in 2028: before, the USA and Russia were missing from ``to``
    and the notice counted for nothing (``notification.missing``)."""
    skies = bundled(OS)
    when = "2028-03-01T00:00:00Z"
    remaining = sorted(skies.members_on(ms(when)) - {"DEU"})
    events = [
        {"id": "ban", "type": "incident", "party": "DEU", "time": when, "kind": "flight_prohibition"},
        {
            "id": "why",
            "type": "notification",
            "party": "DEU",
            "time": "2028-03-02T00:00:00Z",
            "form": "prohibition_explanation",
            "activity": "ban",
            "to": remaining,
        },
    ]
    rep = evaluate(skies, parse_events(events), ms("2028-06-01T00:00:00Z"))
    mine = [f for f in rep.findings if "ban" in f.subjects]
    assert mine == []
    (ob,) = [o for o in rep.obligations if "ban" in o.subjects]
    assert (ob.status, ob.met_by) == ("met", "why")
    # One remaining party left out: not to all, so still missing.
    short = [events[0], events[1] | {"to": [p for p in remaining if p != "FRA"]}]
    rep = evaluate(skies, parse_events(short), ms("2028-06-01T00:00:00Z"))
    assert [f.code for f in rep.findings if "ban" in f.subjects] == ["notification.missing"]


def test_an_exchange_is_owed_only_by_a_member_when_it_falls_due() -> None:
    """HCoC: India subscribed on 1 June 2016; no annual declaration is owed of it before."""
    hcoc = bundled("hague-code-of-conduct-2002")
    events = [
        {
            "id": "d",
            "type": "exchange",
            "party": "DEU",
            "time": "2014-07-01T00:00:00Z",
            "form": "hcoc_annual_declaration",
            "period": "2013",
        }
    ]
    rep = evaluate(hcoc, parse_events(events), ms("2017-12-31T00:00:00Z"))
    india = [o for o in rep.obligations if o.party == "IND"]
    assert india and all(o.due >= ms("2016-06-01T00:00:00Z") for o in india)
    assert "annual-declaration:IND:2013" not in {o.id for o in india}


# ---- cbmnet check -------------------------------------------------------------------------


def check(tmp: Path, agreement: str, events: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    path = tmp / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    p = subprocess.run(
        [*CLI, "check", "--agreement", agreement, "--events", str(path), "--as-of", AS_OF],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in p.stderr, p.stderr
    return p


def bwc_return(party: str, time: str, period: str) -> dict[str, Any]:
    return {
        "id": f"{party.lower()}-{period}",
        "type": "exchange",
        "party": party,
        "time": time,
        "form": "bwc_cbm",
        "period": period,
        "parts": ["A1", "A2", "B", "C", "E", "F", "G"],
    }


def test_check_refuses_a_bwc_return_by_a_state_not_listed(tmp_path: Path) -> None:
    """Israel is not a State Party (it has neither signed nor acceded), and the BWC list is a
    subset (parties_complete: false): its return is bad input naming the record and field,
    not a return that counts for nothing."""
    p = check(tmp_path, "bwc-cbm", [bwc_return("ISR", "2028-04-01T00:00:00Z", "2027")])
    assert p.returncode == 2 and p.stdout == ""
    assert "events.jsonl, record 0 (id 'isr-2027'), field 'party'" in p.stderr
    assert "'ISR' is not a party to 'bwc-cbm'" in p.stderr and "parties_complete: false" in p.stderr


def test_an_italian_bwc_return_now_counts(tmp_path: Path) -> None:
    """Italy deposited at London on 30 May 1975 (the FCO's list, cited in the file): its
    return is taken, and meets its duty for 2027; before, it was refused as a non-party."""
    bwc = bundled("bwc-cbm")
    assert "ITA" in bwc.parties and str(bwc.membership["ITA"].joined) == "1975-05-30"
    ret = bwc_return("ITA", "2028-04-01T00:00:00Z", "2027")
    p = check(tmp_path, "bwc-cbm", [ret])
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stderr
    rep = evaluate(bwc, parse_events([ret]), ms("2028-05-01T00:00:00Z"))
    (ob,) = [o for o in rep.obligations if o.party == "ITA" and o.id.endswith(":2027")]
    assert (ob.status, ob.met_by) == ("met", "ita-2027")
    assert not [f for f in rep.findings if f.party == "ITA"]


def test_a_bwc_return_before_the_state_acceded_is_bad_input(tmp_path: Path) -> None:
    """Angola acceded on 26 Jul 2016 (Washington; the US State Department's list): a return
    dated before is bad input, one dated after is taken."""
    early = bwc_return("AGO", "2016-04-01T00:00:00Z", "2015")
    p = check(tmp_path, "bwc-cbm", [early])
    assert p.returncode == 2 and p.stdout == ""
    assert "record 0 (id 'ago-2015'), field 'party'" in p.stderr
    why = "'AGO' is not a member of 'bwc-cbm' on 2016-04-01T00:00:00Z (a member from 2016-07-26)"
    assert why in p.stderr
    later = bwc_return("AGO", "2017-04-01T00:00:00Z", "2016")
    assert check(tmp_path, "bwc-cbm", [later]).returncode in (0, 1)


def test_bundled_membership_counts_are_what_the_sources_give() -> None:
    """The lists as read for issue 13, item 9 (sources in each file)."""
    bwc = bundled("bwc-cbm")
    assert len(bwc.parties) == 62 and not bwc.parties_complete
    assert set(bwc.parties) - set(bwc.membership) == {"PAK"}  # no date read for Pakistan
    hcoc = bundled("hague-code-of-conduct-2002")
    assert len(hcoc.parties) == 8 and not hcoc.parties_complete
    assert not {"CHN", "PAK"} & set(hcoc.parties)  # not subscribing States
    wto = bundled("wto-tbt")
    assert len(wto.parties) == 101 and not wto.parties_complete
    # 75 States and customs territories on the WTO's first day (76 with the EC, not a State).
    first_day = [p for p, m in wto.membership.items() if str(m.joined) == "1995-01-01"]
    assert len(first_day) == 75 and {"HKG", "MAC"} <= set(first_day)
    assert wto.members_on(ms("1995-01-01T00:00:00Z")) == frozenset(first_day)
    assert len(wto.members_on(ms("1995-09-01T00:00:00Z"))) == 100  # all but China
    assert "CHN" in wto.members_on(ms("2001-12-11T00:00:00Z"))
    for aid in ("vienna-document-2011", "osce-ict-cbm-2016"):
        osce = bundled(aid)
        assert len(osce.parties) == 57 and osce.parties_complete
        assert len(osce.membership) == 34  # admission dates read; the other 23 carry none


def test_mongolia_joined_the_vienna_document_on_its_admission(tmp_path: Path) -> None:
    """Mongolia became the 57th participating State on 21 Nov 2012, a year after VD11 was
    adopted: bound from then, so its activity before is bad input."""
    vd = bundled("vienna-document-2011")
    assert "MNG" not in vd.members_on(ms("2012-11-20T23:59:59Z"))
    assert vd.members_on(ms("2012-11-21T00:00:00Z")) == frozenset(vd.parties)
    act = {
        "id": "mng-1",
        "type": "activity",
        "party": "MNG",
        "category": "land",
        "start": "2012-06-01T00:00:00Z",
        "end": "2012-06-02T00:00:00Z",
        "size": {"troops": 1000},
    }
    p = check(tmp_path, "vienna-document-2011", [act])
    assert p.returncode == 2
    why = "'MNG' is not a member of 'vienna-document-2011' on 2012-06-01T00:00:00Z"
    assert why in p.stderr and "(a member from 2012-11-21)" in p.stderr
    later = act | {"start": "2013-06-01T00:00:00Z", "end": "2013-06-02T00:00:00Z"}
    assert check(tmp_path, "vienna-document-2011", [later]).returncode in (0, 1)
    # The ICT measures were adopted after Mongolia's admission: it is bound by all of them.
    ict = bundled("osce-ict-cbm-2016")
    assert ict.members_on(ms("2013-12-03T00:00:00Z")) == frozenset(ict.parties)


def test_check_refuses_an_event_after_the_party_left(tmp_path: Path) -> None:
    flight = {
        "id": "us-1",
        "type": "activity",
        "party": "USA",
        "category": "flight",
        "start": "2021-03-01T00:00:00Z",
        "end": "2021-03-02T00:00:00Z",
    }
    p = check(tmp_path, OS, [flight])
    assert p.returncode == 2 and p.stdout == ""
    assert "record 0 (id 'us-1'), field 'party'" in p.stderr
    assert "'USA' is not a member of 'open-skies-1992' on 2021-03-01T00:00:00Z" in p.stderr
    assert "until 2020-11-22" in p.stderr
    # While it was a party, the same flight is judged.
    before = flight | {"start": "2019-03-01T00:00:00Z", "end": "2019-03-02T00:00:00Z"}
    assert check(tmp_path, OS, [before]).returncode in (0, 1)


def test_check_refuses_an_activity_hosted_by_a_non_party(tmp_path: Path) -> None:
    act = {
        "id": "x",
        "type": "activity",
        "party": "DEU",
        "host": "CHN",
        "category": "land",
        "start": "2028-05-01T00:00:00Z",
        "end": "2028-05-02T00:00:00Z",
        "size": {"troops": 10000},
    }
    p = check(tmp_path, "vienna-document-2011", [act])
    assert p.returncode == 2
    assert "record 0 (id 'x'), field 'host': 'CHN' is not a party to 'vienna-document-2011'" in p.stderr


def test_check_still_takes_a_secretariat_communication_check(tmp_path: Path) -> None:
    chk = {
        "id": "c",
        "type": "request",
        "party": "secretariat",
        "time": "2028-05-01T00:00:00Z",
        "kind": "communication_check",
        "to": "AUT",
    }
    assert check(tmp_path, "osce-ict-cbm-2016", [chk]).returncode in (0, 1)


# ---- the hub ------------------------------------------------------------------------------


def test_the_hub_refuses_an_activity_hosted_by_a_non_party(store_url: str, tmp_path: Path) -> None:
    doc = {
        "agreement": "vienna-document-2011",
        "id": "DEU-x",
        "type": "activity",
        "party": "DEU",
        "host": "CHN",
        "category": "land",
        "start": "2028-05-01T00:00:00Z",
        "end": "2028-05-02T00:00:00Z",
        "size": {"troops": 10000},
    }
    th: TestHub
    with running_hub(store_url, tmp_path) as th:
        th.register("DEU")
        with th.client("DEU") as c:
            env = c.sign(PT_EVENT, doc)
        r = httpx.post(
            f"{th.url}/v1/acts", content=env, headers={"Content-Type": "application/json"}, timeout=30
        )
        assert 400 <= r.status_code < 500, r.text
        assert "field 'host': 'CHN' is not a party to 'vienna-document-2011'" in r.text
        with th.client("DEU") as c:
            env = c.sign(PT_EVENT, doc | {"host": "POL"})
        r = httpx.post(
            f"{th.url}/v1/acts", content=env, headers={"Content-Type": "application/json"}, timeout=30
        )
        assert r.status_code == 201, r.text
