"""Generated requests against a live hub (its own /openapi.json): none may get a 5xx.

Schemathesis drives every HTTP operation the schema lists, anonymously and with a valid
bearer token (so the party routes are exercised past the 401). It cannot sign, so a
Hypothesis test adds signed acts with generated payloads: they reach the act reader and
the hub state's checks, where a 5xx would hide. The WebSocket routes are not in the
schema and are covered in test_hub_api.py. SQLite only, and bounded: this is the slow file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from cbmnet.acts.model import PAYLOAD_TYPES, PT_ACK, PT_EVENT, PT_HOTLINE, PT_HUB, PT_REGISTRY
from cbmnet.acts.state import act_json
from cbmnet.communication import hotline
from cbmnet.hub.service import HubSettings
from cbmnet.ledger import dsse
from tests.hubkit import AGREEMENTS, TestHub, running_hub

AG = "vienna-document-2011"
JSON = {"Content-Type": "application/json"}
BOUNDED = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHub]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    # No rate limit here: a 429 would stand in front of the code under test.
    hub_settings = HubSettings(sweep_s=3600, checkpoint_s=3600, writes_per_s=1e6)
    with running_hub(f"sqlite:///{tmp / 'log.db'}", tmp, settings=hub_settings) as th:
        th.register("AUT", "BEL", "CHE")
        with th.client("AUT") as aut:  # something to find: public, private and hotline entries
            aut.event(
                {
                    "agreement": AG,
                    "id": "act-1",
                    "type": "activity",
                    "start": "2030-05-01T00:00:00Z",
                    "end": "2030-05-10T00:00:00Z",
                    "category": "land",
                    "size": {"troops": 10_000},
                }
            )
            aut.event(
                {"agreement": AG, "id": "req-1", "type": "request", "kind": "explanation", "to": "BEL"}
            )
            aut.open_channel("aut-bel", AG, ["AUT", "BEL"])
            aut.send("aut-bel", "m-1", "flash", "hello")
        yield th


@pytest.fixture(scope="module")
def hub_schema(live_hub: TestHub) -> Any:
    return schemathesis.openapi.from_url(f"{live_hub.url}/openapi.json")


@pytest.fixture(scope="module")
def bearer(live_hub: TestHub) -> dict[str, str]:
    with live_hub.client("BEL") as bel:
        return {"Authorization": f"Bearer {bel.token()}"}


def operations(hub_schema: Any) -> list[Any]:
    return [r.ok() for r in hub_schema.get_all_operations()]


def test_the_schema_lists_every_http_route(hub_schema: Any, live_hub: TestHub) -> None:
    """What schemathesis drives is the whole HTTP API (the docs pages aside)."""
    listed = {(op.method.upper(), op.path) for op in operations(hub_schema)}
    served = httpx.get(f"{live_hub.url}/openapi.json").json()["paths"]
    assert listed == {(m.upper(), p) for p, ops in served.items() for m in ops}
    assert ("POST", "/v1/acts") in listed and ("GET", "/v1/entries/{index}") in listed
    assert len(listed) >= 19


def plausible(op: Any, size: int, headers: dict[str, str] | None) -> st.SearchStrategy[Any]:
    """Cases that fit the schema and name things that exist: an index in the log, a size
    it had, an agreement the hub serves (random ones mostly meet a 404 at the door)."""

    def cases(**fixed: Any) -> st.SearchStrategy[Any]:
        strategy: st.SearchStrategy[Any] = op.as_strategy(
            GenerationMode.POSITIVE, headers=headers, **fixed
        )
        return strategy

    index, sizes = st.integers(0, size - 1), st.integers(0, size)
    if "{index}" in op.path:
        return index.flatmap(lambda i: cases(path_parameters={"index": i}))
    if op.path == "/v1/obligations":
        return st.sampled_from(AGREEMENTS).flatmap(lambda a: cases(query={"agreement": a}))
    if op.path == "/v1/log/consistency":
        pair = st.tuples(sizes, sizes).map(sorted)
        return pair.flatmap(lambda p: cases(query={"old": p[0], "new": p[1]}))
    if op.path == "/v1/log/witness":
        return sizes.flatmap(lambda n: cases(query={"old": n}))
    if op.path == "/v1/log/cosignatures":
        return sizes.flatmap(lambda n: cases(query={"size": n}))
    return cases()


@pytest.mark.parametrize("mode", ["positive", "negative", "plausible"])
@pytest.mark.parametrize("who", ["anonymous", "party"])
def test_generated_requests_get_no_server_error(
    live_hub: TestHub, hub_schema: Any, bearer: dict[str, str], who: str, mode: str
) -> None:
    """Every operation, with data that fits its schema (positive), that breaks it
    (negative), or that fits it and names what exists (plausible).

    (schemathesis's own pytest plugin does not run under this pytest, so each operation's
    strategy is driven with Hypothesis directly.)
    """
    headers = bearer if who == "party" else None
    size = httpx.get(f"{live_hub.url}/healthz").json()["log_size"]
    tried = []
    for op in operations(hub_schema):
        if mode == "plausible":
            strategy = plausible(op, size, headers)
        else:
            strategy = op.as_strategy(GenerationMode(mode), headers=headers)

        @given(case=strategy)
        @BOUNDED
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            run()
        except Unsatisfiable:  # nothing to break in an operation without inputs
            assert mode == "negative"
            continue
        tried.append(op.label)
    assert len(tried) >= 10, tried


# ---- signed acts with generated payloads ------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
WHEN = st.sampled_from(
    ["2030-05-01T00:00:00Z", "2030-04-01T00:00:00+14:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "agreement": st.sampled_from([AG, "osce-ict-cbm-2016", "nope"]),
    "party": st.sampled_from(["AUT", "BEL", "secretariat", "hub", "ZZZ"]),
    "type": st.sampled_from(["activity", "notification", "exchange", "request", "response", "incident"]),
    "to": st.sampled_from(["BEL", "AUT", ["BEL"], ["*"], ["CHE", "BEL"], "DEU", []]),
    "activity": st.sampled_from(["act-1", "req-1", "none"]),
    "activities": st.lists(st.sampled_from(["act-1", "req-1", "none"]), max_size=3),
    "request": st.sampled_from(["req-1", "act-1"]),
    "amends": st.fixed_dictionaries(
        {
            "id": st.sampled_from(["act-1", "req-1", "x"]),
            "action": st.sampled_from(["correct", "withdraw"]),
        }
    ),
    "entry": st.integers(-2, 12),
    "start": WHEN,
    "end": WHEN,
    "window_start": WHEN,
    "window_end": WHEN,
    "channel": st.sampled_from(["aut-bel", "nope", "AUT-BEL"]),
    "members": st.sampled_from([["AUT", "BEL"], ["AUT", "CHE"], ["AUT"], ["AUT", "DEU"]]),
    "precedence": st.sampled_from(["flash", "routine", "urgent"]),
    "size": st.dictionaries(
        st.sampled_from(["troops", "battle_tanks", "ships", "nukes"]), st.integers(-1, 10**6)
    ),
    "location": st.sampled_from(
        [{"type": "Point", "coordinates": [16.4, 48.2]}, {"type": "Point", "coordinates": [200, 100]}]
    ),
}
# Acts AUT may well be allowed to log, each of them: the generator breaks them from there.
# (No key.rotate / key.revoke: one that went through would lock AUT out for the rest.)
TEMPLATES: list[tuple[str, dict[str, Any]]] = [
    (
        PT_EVENT,
        {
            "agreement": AG,
            "type": "activity",
            "start": "2030-06-01T00:00:00Z",
            "end": "2030-06-02T00:00:00Z",
            "category": "land",
            "size": {"troops": 100},
        },
    ),
    (
        PT_EVENT,
        {"agreement": AG, "type": "notification", "form": "prior_notification", "activity": "act-1"},
    ),
    (PT_EVENT, {"agreement": AG, "type": "request", "kind": "explanation", "to": "BEL"}),
    (PT_EVENT, {"agreement": AG, "type": "response", "request": "req-1", "decision": "answer"}),
    (
        PT_EVENT,
        {"agreement": AG, "type": "exchange", "form": "annual_military_information", "period": "1"},
    ),
    (PT_EVENT, {"agreement": AG, "type": "incident", "kind": "airspace_violation"}),
    (PT_ACK, {"act": "ack", "entry": 4}),
    (
        PT_HOTLINE,
        {
            "act": "hotline.message",
            "channel": "aut-bel",
            "precedence": "routine",
            "suite": hotline.SUITE_NAME,
            "ciphertexts": {"AUT": "AAAA", "BEL": "AAAA"},
        },
    ),
    (PT_HOTLINE, {"act": "channel.open", "agreement": AG, "members": ["AUT", "BEL"]}),
    (PT_REGISTRY, {"act": "party.register", "name": "x", "agreements": [AG]}),
    (PT_HUB, {"act": "obligation.overdue", "agreement": AG, "obligation": "x"}),
]


@st.composite
def signed_acts(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A template act of AUT's, with a few fields dropped, replaced or added."""
    payload_type, template = draw(st.sampled_from(TEMPLATES))
    ident = draw(st.from_regex(r"\Ag-[a-z0-9]{1,8}\Z"))
    doc: dict[str, Any] = {**template, "party": "AUT", "id": ident, "channel": f"c-{ident}"}
    if payload_type == PT_HOTLINE and template["act"] == "hotline.message":
        doc["channel"] = "aut-bel"
    for name in draw(st.lists(st.sampled_from(sorted(doc)), max_size=2, unique=True)):
        del doc[name]
    names = sorted({*PLAUSIBLE, *template, "id", "type", "form", "act", "body", "amends"})
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        plausible = PLAUSIBLE.get(name)
        doc[name] = draw(plausible | JSON_VALUES if plausible is not None else JSON_VALUES)
    return payload_type, doc


def test_signed_acts_with_generated_payloads_get_no_server_error(live_hub: TestHub) -> None:
    statuses: set[int] = set()

    # Now and then, under another payload type than the act's own.
    retype = st.sampled_from([None] * 6 + [*PAYLOAD_TYPES, "text/plain"])

    @given(act=signed_acts(), payload_type=retype)
    @settings(
        max_examples=250,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(act: tuple[str, dict[str, Any]], payload_type: str | None) -> None:
        payload_type = payload_type or act[0]
        doc = act[1]
        try:
            payload = act_json(doc)
        except ValueError:  # a lone surrogate: send Python's escaped JSON instead
            payload = json.dumps(doc).encode()
        env = dsse.sign(payload_type, payload, [live_hub.keys["AUT"].signer])
        r = httpx.post(f"{live_hub.url}/v1/acts", content=env, headers=JSON)
        assert r.status_code < 500, (r.status_code, r.text, payload_type, doc)
        if r.status_code >= 400:
            assert set(r.json()) == {"error", "message"}
        statuses.add(r.status_code)

    run()
    # The generator got past the envelope: to the act reader (400), the signature check
    # (422), the state's checks (403/404/409) and into the log (201).
    assert {201, 400, 422} <= statuses and statuses & {403, 404, 409}, statuses
