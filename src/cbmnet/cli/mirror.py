"""``cbmnet mirror``: a party's national mirror of the hub's log (issue 16).

Follows the hub (``mirror/follow.py``) in a thread and serves what it holds read-only
(``mirror/app.py``) until SIGTERM or Ctrl-C. It runs on the party's own machine, with its
own store: when the hub is down or refuses service, the party's tools read the mirror.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from cbmnet.cli.files import read_text
from cbmnet.errors import CbmnetError, FormatError, StoreError
from cbmnet.i18n import gettext as _

log = logging.getLogger("cbmnet.mirror")


def mirror_verb(
    hub: Annotated[str, typer.Option(envvar="CBMNET_HUB", help=_("The hub's URL."))],
    log_key: Annotated[
        str, typer.Option("--log", help=_("The log's verifier key, or a .vkey file holding it."))
    ],
    db: Annotated[str, typer.Option(help=_("The mirror's own store URL."))] = "sqlite:///mirror.db",
    party: Annotated[
        str | None,
        typer.Option(
            envvar="CBMNET_PARTY", help=_("Your party id: the mirror keeps the entries you may read.")
        ),
    ] = None,
    key: Annotated[
        Path | None, typer.Option(envvar="CBMNET_KEY", help=_("Your signer key file (PRIVATE+KEY+...)."))
    ] = None,
    mirror_key: Annotated[
        Path | None,
        typer.Option(help=_("The mirror's own signer key: it cosigns what it has mirrored.")),
    ] = None,
    host: Annotated[str, typer.Option(help=_("Address to listen on."))] = "127.0.0.1",
    port: Annotated[int, typer.Option(help=_("TCP port."))] = 8100,
    serve_entries: Annotated[
        bool,
        typer.Option(
            help=_(
                "Serve your entries to clients on this machine (loopback); off: hashes only. "
                "Never behind a proxy on the same machine: it would make every client local."
            )
        ),
    ] = False,
    every: Annotated[
        float, typer.Option(help=_("Seconds between two looks at the hub."), min=0.05)
    ] = 1.0,
) -> None:
    import uvicorn

    from cbmnet.hub.server import uvicorn_config
    from cbmnet.ledger.note import new_verifier, parse_signer_key
    from cbmnet.mirror.app import create_mirror_app
    from cbmnet.mirror.follow import LAST_ERROR, Follower, SplitViewError
    from cbmnet.party.client import HubClient, Identity
    from cbmnet.store import open_store

    vkey = read_text(log_key).strip() if os.path.isfile(log_key) else log_key.strip()
    new_verifier(vkey)
    own = read_text(str(mirror_key)).strip() if mirror_key else None
    if own:
        parse_signer_key(own)
    if (party is None) != (key is None):
        raise FormatError(
            "give --party and --key together (or neither: the mirror then keeps hashes only)"
        )
    client = None
    party_key = None
    if party and key:
        signer = read_text(str(key)).strip()
        party_key = parse_signer_key(signer).public_key
        client = HubClient(hub, Identity(party, signer))

    def token(fresh: bool) -> str | None:
        if client is None:
            return None
        if fresh:
            client.forget_token()
        return client.token()

    store = open_store(db, create=True)
    follower = Follower(store, hub, vkey, mirror_key=own, party=party, token=token)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
    except OSError as e:
        raise StoreError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per GET would drown ours
    stop = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            behind = False
            try:
                got = follower.step()
                behind = got.behind
                if store.get_meta(LAST_ERROR):
                    store.set_meta(LAST_ERROR, "")
                if got.added:
                    log.info(json.dumps({"event": "mirrored", **got.__dict__}))
            except SplitViewError as e:
                log.error(json.dumps({"event": "split_view", "error": e.diagnostics()}))
                return
            except Exception as e:  # the loop outlives any one bad answer of the hub
                why = e.diagnostics() if isinstance(e, CbmnetError) else f"{type(e).__name__}: {e}"
                log.warning(json.dumps({"event": "behind", "error": why[:500]}))
                with contextlib.suppress(CbmnetError):
                    store.set_meta(LAST_ERROR, why[:500])
            if not behind:
                stop.wait(every)

    thread = threading.Thread(target=follow, name="cbmnet-mirror", daemon=True)
    app = create_mirror_app(store, serve_entries=serve_entries, party=party, party_key=party_key)
    server = uvicorn.Server(uvicorn_config(app, log_config=None, access_log=False))

    def _stop(*_a: Any) -> None:
        stop.set()
        server.should_exit = True

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    log.info(
        json.dumps({"event": "mirroring", "hub": hub, "url": f"http://{host}:{sock.getsockname()[1]}"})
    )
    try:
        thread.start()
        server.run(sockets=[sock])
    finally:
        stop.set()
        thread.join(timeout=30)
        for s, h in previous.items():
            signal.signal(s, h)
        if client is not None:
            client.close()
        store.close()


def add_mirror_verb(app: typer.Typer) -> None:
    """Register ``mirror`` on the main app."""
    app.command(
        "mirror",
        help=_(
            "Mirror the hub's log: verify every tile and checkpoint before keeping it, "
            "keep your entries, serve them read-only, cosign what is mirrored."
        ),
    )(mirror_verb)
