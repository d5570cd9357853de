"""A party flooding the hub spends its own write budget: it gets 429 with Retry-After,
while another party's acts, sent meanwhile, are all logged.

The budget is per verified author (``party_writes_per_s``) and spent only by acts newly
logged: an act naming another party as author but not signed by it is refused before it
costs that party anything, and a replay of a party's logged acts is answered with their
receipts for nothing. Latency under flood is measured by ``bench/flood.py`` (figures in
docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx

from cbmnet.acts.model import PT_EVENT
from cbmnet.hub.service import HubSettings
from tests.hubkit import running_hub, served_hub

AG = "vienna-document-2011"


def _activity(party: str, n: int) -> dict[str, object]:
    return {
        "agreement": AG,
        "id": f"{party.lower()}-act-{n}",
        "type": "activity",
        "party": party,
        "start": "2030-05-01T00:00:00Z",
        "end": "2030-05-02T00:00:00Z",
        "category": "land",
        "size": {"troops": 100},
        "location": {"type": "Point", "coordinates": [16.37, 48.21]},
    }


def test_a_flooding_party_gets_429s_and_another_keeps_writing(tmp_path: Path) -> None:
    settings = HubSettings(sweep_s=3600, checkpoint_s=3600, party_writes_per_s=5.0)
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, settings=settings) as th:
        th.register("AUT", "BEL")
        with th.client("AUT") as aut, th.client("BEL") as bel:
            flood = [aut.sign(PT_EVENT, _activity("AUT", n)) for n in range(80)]
            calm = [bel.sign(PT_EVENT, _activity("BEL", n)) for n in range(4)]
            # A forgery naming BEL as author, signed by AUT: refused, and costs BEL nothing.
            forged = aut.sign(PT_EVENT, _activity("BEL", 99))
        statuses: list[int] = []
        retry_after: list[str] = []
        lock = threading.Lock()

        def flooder(part: list[bytes]) -> None:
            with httpx.Client(base_url=th.url, timeout=30) as http:
                for env in part:
                    r = http.post("/v1/acts", content=env, headers={"Content-Type": "application/json"})
                    with lock:
                        statuses.append(r.status_code)
                        if r.status_code == 429:
                            retry_after.append(r.headers.get("retry-after", ""))

        threads = [threading.Thread(target=flooder, args=(flood[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=th.url, timeout=30) as http:
            for _ in range(15):
                r = http.post("/v1/acts", content=forged, headers={"Content-Type": "application/json"})
                assert r.status_code == 422, r.text  # not signed by its author
            calm_status = [
                http.post(
                    "/v1/acts", content=env, headers={"Content-Type": "application/json"}
                ).status_code
                for env in calm
            ]
        for t in threads:
            t.join()
        assert calm_status == [201] * len(calm)
        refused = statuses.count(429)
        accepted = statuses.count(201)
        assert refused >= 20 and accepted + refused == len(flood), statuses
        assert all(int(v) >= 1 for v in retry_after)
        # Exactly what was accepted is in the log, nothing of what was refused.
        with th.client("BEL") as reader:
            logged = {i["event_id"] for i in reader.iter_entries(kind="activity")}
        assert sum(1 for e in logged if e.startswith("aut-act-")) == accepted
        assert {f"bel-act-{n}" for n in range(len(calm))} <= logged


def test_replaying_a_partys_logged_acts_spends_nothing_of_its_budget(tmp_path: Path) -> None:
    """Hole 3: AUT replays BEL's logged envelopes in a tight loop; BEL's fresh acts all land.

    Before the fix each replay was verified and charged to BEL (the proven author) before
    the log deduplicated it: 8 of 10 of BEL's acts got 429, and kept up past a FLASH
    hotline deadline the hub would have logged BEL as silent.
    """
    # Everyone here shares 127.0.0.1: the per-address budget (the replayer's own, in
    # deployment) is raised out of the way so only the per-author budget is under test.
    settings = HubSettings(
        sweep_s=3600, checkpoint_s=3600, party_writes_per_s=5.0, writes_per_s=1_000_000.0
    )
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, settings=settings) as th:
        th.register("AUT", "BEL")
        with th.client("BEL") as bel:
            first = [bel.submit(bel.sign(PT_EVENT, _activity("BEL", n))) for n in range(4)]
            fresh = [bel.sign(PT_EVENT, _activity("BEL", 100 + n)) for n in range(10)]
        with th.client("AUT") as aut:
            # What any member may read: BEL's logged envelopes, as the log holds them.
            logged = [
                json.dumps(i["envelope"]).encode()
                for i in aut.iter_entries(kind="activity", author="BEL")
            ]
            forged = aut.sign(PT_EVENT, _activity("BEL", 0))  # BEL's statement, AUT's signature
        assert len(logged) == len(first)
        time.sleep(2.5)  # BEL's budget refills (a burst of 10) before the replay starts
        stop = threading.Event()
        replies: list[tuple[int, int | None]] = []
        lock = threading.Lock()

        def replayer() -> None:
            with httpx.Client(base_url=th.url, timeout=30) as http:
                k = 0
                while not stop.is_set():
                    env = logged[k % len(logged)]
                    k += 1
                    r = http.post(
                        "/v1/acts",
                        content=env,
                        params={"proof": "false"},
                        headers={"Content-Type": "application/json"},
                    )
                    with lock:
                        replies.append((r.status_code, r.json().get("index")))

        threads = [threading.Thread(target=replayer) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 10
            while len(replies) < 40 and time.monotonic() < deadline:
                time.sleep(0.01)  # the replay is in full swing before BEL writes
            with httpx.Client(base_url=th.url, timeout=30) as http:
                r = http.post("/v1/acts", content=forged, headers={"Content-Type": "application/json"})
                assert r.status_code == 422, r.text  # a guessed statement learns nothing
                statuses = [
                    http.post(
                        "/v1/acts",
                        content=env,
                        params={"proof": "false"},
                        headers={"Content-Type": "application/json"},
                    ).status_code
                    for env in fresh
                ]
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert statuses == [201] * len(fresh), statuses
        # Every replay was answered with the original receipt, none refused or re-logged.
        assert len(replies) >= 40
        assert {s for s, _ in replies} == {200}, {s for s, _ in replies}
        assert {i for _, i in replies} == {f["index"] for f in first}
        with th.client("BEL") as reader:
            ids = [i["event_id"] for i in reader.iter_entries(kind="activity", author="BEL")]
        assert len(ids) == len(set(ids)) == len(first) + len(fresh)


STATES = [
    "ALB",
    "AND",
    "ARM",
    "AZE",
    "BGR",
    "BIH",
    "BLR",
    "CAN",
    "CHE",
    "CYP",
    "CZE",
    "DEU",
    "DNK",
    "ESP",
    "EST",
    "FIN",
    "FRA",
    "GBR",
    "GEO",
    "GRC",
]
STATES += ["HRV", "HUN", "IRL", "ISL", "ITA", "KAZ", "KGZ", "LIE", "LTU", "LUX"]


def test_a_flood_of_far_future_evaluations_leaves_reads_and_healthz_prompt(tmp_path: Path) -> None:
    """Hole 4: 45 connections of one party ask for evaluations with far-future ``as_of``.

    Before the fix each took ~1.5 s of engine work (any date up to 2199), queued on the
    thread pool every sync route shares before its budget was looked at: another party's
    read took 19.7 s, /healthz 6.4 s. Now ``as_of`` past the horizon is a 400 naming it,
    the budget is spent on the event loop (429 beyond), and evaluations run on threads of
    their own. The bound below is for correctness, not a benchmark: unflooded, these
    answers take tens of milliseconds.
    """
    # The hub runs in a process of its own, as it does in service: the 45 flooding threads
    # below would otherwise share its interpreter lock, and the bound would measure them.
    with served_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path) as th:
        # 32 parties: a month of indicators per party, so a far-future as_of is seconds of work.
        th.register("AUT", "BEL", *STATES)
        with th.client("AUT") as aut, th.client("BEL") as bel:
            for n in range(3):
                aut.submit(aut.sign(PT_EVENT, _activity("AUT", n)))
            aut_auth = {"Authorization": f"Bearer {aut.token()}"}
            bel_auth = {"Authorization": f"Bearer {bel.token()}"}
        with httpx.Client(base_url=th.url, timeout=30) as http:
            for path in ("/v1/obligations", "/v1/indicators"):
                for bad in ("2199-06-01T00:00:00Z", "1969-12-31T23:59:59Z"):
                    r = http.get(path, params={"agreement": AG, "as_of": bad}, headers=aut_auth)
                    assert r.status_code == 400, r.text[:300]
                    assert r.json()["error"] == "bad_input"
                    assert "as_of" in r.json()["message"] and "1970-01-01" in r.json()["message"]
        stop = threading.Event()
        statuses: list[int] = []
        lock = threading.Lock()

        def flooder(k: int) -> None:
            with httpx.Client(base_url=th.url, timeout=60) as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    # Mostly far future (the attack), and now and then another date within
                    # the horizon (no cached answer serves it): what a flood can still ask.
                    year = 2199 - (n + k) % 100 if n % 4 else 2027
                    as_of = f"{year}-{1 + (n + k) % 12:02d}-{1 + n % 28:02d}T{k % 24:02d}:00:00Z"
                    path = "/v1/indicators" if n % 3 else "/v1/obligations"
                    r = http.get(path, params={"agreement": AG, "as_of": as_of}, headers=aut_auth)
                    with lock:
                        statuses.append(r.status_code)

        threads = [threading.Thread(target=flooder, args=(k,)) for k in range(45)]
        for t in threads:
            t.start()
        timings: dict[str, float] = {}
        try:
            deadline = time.monotonic() + 10
            while len(statuses) < 90 and time.monotonic() < deadline:
                time.sleep(0.01)
            with httpx.Client(base_url=th.url, timeout=60) as http:
                for _ in range(5):
                    for name, path, params in (
                        ("healthz", "/healthz", {}),
                        ("read", "/v1/entries", {}),
                        ("evaluation", "/v1/obligations", {"agreement": AG}),
                    ):
                        t0 = time.monotonic()
                        r = http.get(path, params=params, headers=bel_auth)
                        took = time.monotonic() - t0
                        assert r.status_code == 200, (name, r.text)
                        timings[name] = max(timings.get(name, 0.0), took)
                    time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert all(took < 2.0 for took in timings.values()), timings
        assert statuses.count(400) > 0 and statuses.count(429) > 0, sorted(set(statuses))
        assert set(statuses) <= {200, 400, 429}, sorted(set(statuses))


def test_a_party_holding_many_requests_open_waits_for_its_own_not_others(tmp_path: Path) -> None:
    """Fair admission: a party's requests beyond a few in flight wait, parked, for its own.

    AUT holds 8 uploads open (headers sent, body never): 4 are admitted and wait for
    their bodies, the rest are parked. AUT's next read waits behind its own; BEL's read,
    BEL's write (anonymous: its claimed author is never a key) and a request with a
    forged token naming no one are answered at once. Once AUT's uploads go, its read is
    answered. The bounds are for correctness, not a benchmark.
    """
    settings = HubSettings(sweep_s=3600, checkpoint_s=3600, writes_per_s=1_000_000.0)
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, settings=settings) as th:
        th.register("AUT", "BEL")
        with th.client("AUT") as aut, th.client("BEL") as bel:
            aut_token, bel_token = aut.token(), bel.token()
            act = bel.sign(PT_EVENT, _activity("BEL", 1))
        host, port = th.url.removeprefix("http://").split(":")
        held = []
        try:
            for _ in range(8):
                s = socket.create_connection((host, int(port)), timeout=30)
                s.sendall(
                    (
                        f"PUT /v1/observations/0 HTTP/1.1\r\nHost: {host}\r\n"
                        f"Authorization: Bearer {aut_token}\r\nContent-Length: 1000\r\n\r\n"
                    ).encode()
                )
                held.append(s)
            time.sleep(1.0)  # all 8 are read and AUT's places are taken
            aut_read: dict[str, int] = {}

            def read_as_aut() -> None:
                with httpx.Client(base_url=th.url, timeout=60) as http:
                    r = http.get("/v1/entries", headers={"Authorization": f"Bearer {aut_token}"})
                    aut_read["status"] = r.status_code

            waiting = threading.Thread(target=read_as_aut)
            waiting.start()
            with httpx.Client(base_url=th.url, timeout=10) as http:
                t0 = time.monotonic()
                r = http.get("/v1/entries", headers={"Authorization": f"Bearer {bel_token}"})
                assert r.status_code == 200, r.text
                r = http.post("/v1/acts", content=act, headers={"Content-Type": "application/json"})
                assert r.status_code == 201, r.text
                r = http.get("/v1/entries", headers={"Authorization": "Bearer AUT.forged"})
                assert r.status_code == 401, r.text
                assert time.monotonic() - t0 < 5.0
            waiting.join(timeout=1.0)
            assert waiting.is_alive() and not aut_read, "AUT's read should wait for its own"
        finally:
            for s in held:
                s.close()
        waiting.join(timeout=30)
        assert aut_read == {"status": 200}
