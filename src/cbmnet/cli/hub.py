"""The hub-facing verbs of ``cbmnet``: run a hub, and act on one as a party.

Thin on purpose: each verb reads its files, builds a ``HubClient`` (or a ``Hub``) and
prints what comes back. The rules live in the hub and in ``cbmnet.acts``; errors are
``CbmnetError`` and reach the user through ``cbmnet.cli.main.main``'s one mapping to exit
codes (0 ok, 1 a check failed, 2 bad input or an unreachable hub, 3 not authorised).

Heavy imports (httpx, FastAPI, uvicorn) happen inside the verbs, so ``cbmnet check``
and the other offline verbs start as fast as before.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cbmnet.cli.files import read_bytes as _read_bytes
from cbmnet.cli.files import read_text as _read_text
from cbmnet.errors import AuthError, CbmnetError, FormatError, StoreError
from cbmnet.i18n import gettext as _

if TYPE_CHECKING:
    from cbmnet.party.client import HubClient


HubOpt = Annotated[
    str | None, typer.Option("--hub", envvar="CBMNET_HUB", help=_("The hub's URL (http://host:port)."))
]
PartyOpt = Annotated[
    str | None,
    typer.Option("--party", envvar="CBMNET_PARTY", help=_("The party you act as (e.g. IND).")),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", envvar="CBMNET_KEY", help=_("Your signer key file (PRIVATE+KEY+...).")),
]
HpkeOpt = Annotated[
    Path | None,
    typer.Option("--hpke", envvar="CBMNET_HPKE", help=_("Your X25519 private key file (NAME.hpke).")),
]
AgreementOpt = Annotated[str, typer.Option("--agreement", help=_("An agreement id the hub serves."))]


# ---- reading the user's files -----------------------------------------------------------


def _in_file(path: str, fn: Callable[[], Any]) -> Any:
    """Run a parser and put the file's name in front of its error message."""
    try:
        return fn()
    except FormatError as e:
        raise type(e)(f"{path}: {e}") from None


def _signer_key(path: Path) -> str:
    from cbmnet.ledger.note import parse_signer_key

    text = _read_text(str(path)).strip()
    _in_file(str(path), lambda: parse_signer_key(text))
    return text


def _hpke_key(path: Path) -> str:
    from cbmnet.communication.hotline import private_key

    text = _read_text(str(path)).strip()
    private_key(text, str(path))
    return text


def _key_arg(value: str, what: str, check: Callable[[str], object]) -> str:
    """A public key given inline or as a file holding it (what ``keys`` writes)."""
    text = _read_text(value).strip() if os.path.isfile(value) else value.strip()
    try:
        check(text)
    except FormatError as e:
        where = value if os.path.isfile(value) else "the value given"
        raise FormatError(f"{what} ({where}): {e}") from None
    return text


def _check_vkey(text: str) -> None:
    from cbmnet.ledger.note import parse_verifier_key

    parse_verifier_key(text)


def _check_x25519_public(text: str) -> None:
    from cbmnet.communication.hotline import public_key

    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise FormatError("not standard base64") from None
    public_key(raw, "X25519 public key")


def _json_object(path: str) -> dict[str, Any]:
    text = _read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{path}: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: must hold one JSON object")
    return doc


def aligned(rows: list[tuple[str, str]], gap: int) -> list[str]:
    """Labels and their values in two columns, each value ``gap`` spaces after the longest
    label (the labels are translated, so their width is only known at run time)."""
    width = max(len(label) for label, _value in rows) + gap
    return [f"{label:<{width}}{value}" for label, value in rows]


def _echo_json(doc: Any, *, pretty: bool = False) -> None:
    typer.echo(json.dumps(doc, ensure_ascii=False, indent=2 if pretty else None))


def _receipt(r: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What a user needs from a receipt; the proof itself was checked by the client."""
    return {
        **extra,
        "index": r["index"],
        "integrated_at": r["integrated_at"],
        "duplicate": r["duplicate"],
    }


@contextmanager
def _client(
    hub: str | None,
    party: str | None = None,
    key: Path | None = None,
    hpke: Path | None = None,
    *,
    signed: bool = True,
) -> Iterator[HubClient]:
    """A client acting as ``party`` with its key (``signed=False``: anonymous)."""
    from cbmnet.party.client import HubClient, Identity

    if not hub:
        raise FormatError("no hub: give --hub URL or set CBMNET_HUB")
    if not hub.startswith(("http://", "https://")):
        raise FormatError(f"--hub {hub!r}: must be an http:// or https:// URL")
    identity = None
    if signed:
        if not party:
            raise FormatError("who are you? give --party ID or set CBMNET_PARTY")
        if key is None:
            raise FormatError(f"give --key with {party}'s signer key file, or set CBMNET_KEY")
        identity = Identity(party, _signer_key(key), _hpke_key(hpke) if hpke else None)
    from cbmnet.party.client import Pins

    # The hub's identity as the secretariat handed it over (hub.json): trust nothing else.
    pins_file = os.environ.get("CBMNET_PINS")
    c = HubClient(hub, identity, pins=Pins.load(pins_file) if pins_file else None)
    try:
        yield c
    finally:
        c.close()


# ---- keys ---------------------------------------------------------------------------------

_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def keys_hpke(
    name: Annotated[str, typer.Option(help=_("Key name, e.g. the party id 'IND'."))],
    out: Annotated[Path, typer.Option(help=_("Folder for the key files."))] = Path("."),
) -> None:
    """Make an X25519 key for hotline bodies: NAME.hpke (private, owner-only), NAME.hpke.pub."""
    from cbmnet.communication.hotline import generate_encryption_key

    if not _KEY_NAME.match(name):
        raise FormatError(f"key name {name!r}: letters, digits, '.', '_' and '-' only")
    private, public = generate_encryption_key()
    out.mkdir(parents=True, exist_ok=True)
    key_path = out / f"{name}.hpke"
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FormatError(f"{key_path} exists; not overwriting a private key") from None
    except OSError as e:
        raise FormatError(f"{key_path}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(private + "\n")
    pub_path = out / f"{name}.hpke.pub"
    pub_path.write_text(public + "\n")
    rows = [(_("private key:"), str(key_path)), (_("public key:"), f"{pub_path} ({public})")]
    for line in aligned(rows, gap=2):
        typer.echo(line)


# ---- running a hub -----------------------------------------------------------------------

hub_app = typer.Typer(help=_("Create a hub (then run it with 'cbmnet serve')."), no_args_is_help=True)


@hub_app.command(
    "init",
    help=_("Create the hub's keys and store; run it again with the same keys and it changes nothing."),
)
def hub_init(
    origin: Annotated[str, typer.Option(help=_("The log's name, e.g. 'hub.example.org/log'."))],
    secretariat: Annotated[
        str, typer.Option(help=_("The secretariat's verifier key, or a .vkey file holding it."))
    ],
    agreement: Annotated[
        list[str], typer.Option("--agreement", help=_("A bundled agreement id or a file (repeatable)."))
    ],
    data: Annotated[Path, typer.Option(help=_("Folder for the keys (DIR/keys) and the store."))] = Path(
        "data"
    ),
    db: Annotated[str | None, typer.Option(help=_("Store URL; default sqlite:///DIR/hub.db."))] = None,
) -> None:
    """Create the hub's keys and store; run it again with the same keys and it changes nothing."""
    from cbmnet.agreements.loader import load_agreement
    from cbmnet.hub.service import init_hub
    from cbmnet.ledger.note import parse_signer_key

    sec = _key_arg(secretariat, "--secretariat", _check_vkey)
    agreements = [load_agreement(a) for a in agreement]
    url = db or f"sqlite:///{data}/hub.db"
    keys = init_hub(url, data / "keys", origin=origin, secretariat_vkey=sec, agreements=agreements)
    typer.echo(
        _("hub %(origin)s in %(store)s; keys in %(keys)s")
        % {"origin": origin, "store": url, "keys": data / "keys"}
    )
    log_vkey = parse_signer_key(keys.log_key).verifier_key
    typer.echo(_("log verifier key: %(key)s") % {"key": log_vkey})
    typer.echo(_("hub verifier key: %(key)s") % {"key": parse_signer_key(keys.hub_key).verifier_key})
    typer.echo(_("agreements: %(ids)s") % {"ids": ", ".join(a.id for a in agreements)})


class _JsonLines(logging.Formatter):
    """One JSON object per log line; a message that is itself JSON is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        from cbmnet.ledger.entry import format_time_ms

        doc: dict[str, Any] = {
            "time": format_time_ms(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        msg = record.getMessage()
        parsed: Any = None
        if msg.startswith("{"):
            try:
                parsed = json.loads(msg)
            except ValueError:
                parsed = None
        if isinstance(parsed, dict):
            doc.update(parsed)
        else:
            doc["message"] = msg
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class _Stop(Exception):
    """SIGTERM or SIGINT, re-raised by uvicorn after its graceful shutdown."""


def _stop(sig: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(sig).name)


def _host_port(text: str, default: int, what: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``, checked."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else ("" if not rest else "x")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    try:
        number = int(port) if port else default
    except ValueError:
        raise FormatError(f"{what} {text!r}: the port is not a number") from None
    if not host or not 0 < number < 65536:
        raise FormatError(f"{what} {text!r}: expected HOST or HOST:PORT")
    return host, number


def serve(
    data: Annotated[Path, typer.Option(help=_("The folder 'cbmnet hub init' filled."))] = Path("data"),
    db: Annotated[str | None, typer.Option(help=_("Store URL; default sqlite:///DIR/hub.db."))] = None,
    keys: Annotated[Path | None, typer.Option(help=_("Key folder; default DIR/keys."))] = None,
    host: Annotated[str, typer.Option(help=_("Address to listen on."))] = "127.0.0.1",
    port: Annotated[int, typer.Option(help=_("TCP port."))] = 8000,
    sweep_seconds: Annotated[
        float, typer.Option(help=_("How often to look for missed deadlines."), min=0.05)
    ] = 2.0,
    log_level: Annotated[str, typer.Option(help=_("debug, info, warning or error."))] = "info",
    proxy: Annotated[
        str | None,
        typer.Option(
            help=_(
                "Address (or network) of the reverse proxy whose X-Forwarded-For is believed;"
                " default none: every client is charged by the address it connects from."
            )
        ),
    ] = None,
    smtp: Annotated[
        str | None,
        typer.Option(help=_("HOST[:PORT] of the SMTP relay e-mail alerts go through; default none.")),
    ] = None,
    smtp_from: Annotated[
        str, typer.Option(help=_("The From address of e-mail alerts."))
    ] = "cbmnet@localhost",
    public_url: Annotated[
        str, typer.Option(help=_("The dashboard's address as parties reach it (links in alerts)."))
    ] = "",
    alerts_allow_private: Annotated[
        bool,
        typer.Option(help=_("Let webhooks reach http:// and private addresses (a closed network).")),
    ] = False,
) -> None:
    """Run the hub in the foreground (JSON log lines on stderr) until SIGTERM or Ctrl-C."""
    import socket

    import uvicorn

    from cbmnet.hub.app import create_app
    from cbmnet.hub.server import trusted_proxy, uvicorn_config
    from cbmnet.hub.service import Hub, HubKeys, HubSettings

    level = getattr(logging, log_level.upper(), None)
    if log_level.lower() not in ("debug", "info", "warning", "error") or not isinstance(level, int):
        raise FormatError(f"--log-level {log_level!r}: use debug, info, warning or error")
    trusted_proxy(proxy)  # a bad address is refused before anything starts
    smtp_host, smtp_port = _host_port(smtp, 25, "--smtp") if smtp else (None, 25)
    hub_keys = HubKeys.load(keys or data / "keys")
    url = db or f"sqlite:///{data}/hub.db"
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
    except OSError as e:
        raise StoreError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    # Only now, with the inputs checked: this process's logging becomes JSON lines.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    log = logging.getLogger("cbmnet.hub")
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    hub = None
    try:
        settings = HubSettings(
            sweep_s=sweep_seconds,
            smtp_host=smtp_host,
            smtp_port=smtp_port,
            smtp_from=smtp_from,
            public_url=public_url,
            alerts_allow_private=alerts_allow_private,
        )
        hub = Hub(url, hub_keys, settings)
        config = uvicorn_config(
            create_app(hub),
            proxy=proxy,
            log_config=None,
            log_level=level,
            access_log=False,  # the app logs each request as JSON itself
        )
        log.info(
            json.dumps(
                {
                    "event": "serving",
                    "url": f"http://{host}:{sock.getsockname()[1]}",
                    "origin": hub.log.origin,
                    "store": url,
                }
            )
        )
        uvicorn.Server(config).run(sockets=[sock])
    except _Stop as e:
        log.info(json.dumps({"event": "stopped", "signal": str(e)}))
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if hub is not None:
            hub.close()
        sock.close()


# ---- the registry ------------------------------------------------------------------------

party_app = typer.Typer(help=_("Register parties and manage their keys."), no_args_is_help=True)


@party_app.command(
    "register",
    help=_("(Secretariat) Log a party's registration; --key is the secretariat's signer key."),
)
def party_register(
    party: Annotated[str, typer.Option("--party", help=_("The party to register (e.g. IND)."))],
    name: Annotated[str, typer.Option(help=_("Its name, e.g. 'Republic of India'."))],
    agreement: Annotated[list[str], typer.Option("--agreement", help=_("Agreement id (repeatable)."))],
    signing_key: Annotated[str, typer.Option(help=_("Its verifier key, or the .vkey file."))],
    encryption_key: Annotated[
        str, typer.Option(help=_("Its X25519 public key, or the .hpke.pub file."))
    ],
    witness_key: Annotated[
        str | None, typer.Option(help=_("Its witness's cosigner key, or the .cosigner.vkey file."))
    ] = None,
    recovery_key: Annotated[
        str | None,
        typer.Option(
            help=_("The verifier key the party keeps offline to recover its identity (.vkey).")
        ),
    ] = None,
    contact: Annotated[
        list[str] | None,
        typer.Option("--contact", help=_("A point of contact as KEY=VALUE (repeatable).")),
    ] = None,
    hub: HubOpt = None,
    key: KeyOpt = None,
) -> None:
    """(Secretariat) Log a party's registration; --key is the secretariat's signer key."""
    from cbmnet.acts.model import SECRETARIAT

    doc: dict[str, Any] = {
        "party": party,
        "name": name,
        "agreements": agreement,
        "signing_key": _key_arg(signing_key, "--signing-key", _check_vkey),
        "encryption_key": _key_arg(encryption_key, "--encryption-key", _check_x25519_public),
    }
    if witness_key is not None:
        doc["witness_key"] = _key_arg(witness_key, "--witness-key", _check_vkey)
    if recovery_key is not None:
        doc["recovery_key"] = _key_arg(recovery_key, "--recovery-key", _check_vkey)
    pairs: dict[str, str] = {}
    for item in contact or ():
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise FormatError(f"--contact {item!r}: write KEY=VALUE")
        pairs[k] = v
    if pairs:
        doc["contact"] = pairs
    with _client(hub, SECRETARIAT, key) as c:
        _echo_json(_receipt(c.register(doc), party=party))


ByOpt = Annotated[
    str | None,
    typer.Option(
        "--by",
        help=_(
            "Who signs (--key): the party's current key (default), 'recovery' (its offline "
            "recovery key) or, for a rotation, 'quorum' (the NEW signing key, once a quorum of other "
            "parties has approved these exact keys). Never the secretariat (docs/adr/0007)."
        ),
    ),
]
NewEncryptionOpt = Annotated[
    str | None,
    typer.Option("--encryption-key", help=_("A new X25519 public key, or its .hpke.pub file.")),
]
NewWitnessOpt = Annotated[
    str | None,
    typer.Option("--witness-key", help=_("A new witness key (.cosigner.vkey file).")),
]
NewRecoveryOpt = Annotated[
    str | None,
    typer.Option("--recovery-key", help=_("A new recovery verifier key (only by recovery or quorum).")),
]


def _new_keys(
    doc: dict[str, Any],
    signing_key: str,
    encryption_key: str | None,
    witness_key: str | None,
    recovery_key: str | None,
) -> dict[str, Any]:
    doc["signing_key"] = _key_arg(signing_key, "--signing-key", _check_vkey)
    if encryption_key is not None:
        doc["encryption_key"] = _key_arg(encryption_key, "--encryption-key", _check_x25519_public)
    if witness_key is not None:
        doc["witness_key"] = _key_arg(witness_key, "--witness-key", _check_vkey)
    if recovery_key is not None:
        doc["recovery_key"] = _key_arg(recovery_key, "--recovery-key", _check_vkey)
    return doc


@party_app.command(
    "rotate",
    help=_("Replace the party's signing key (the old one stops at this entry); --key signs (see --by)."),
)
def party_rotate(
    signing_key: Annotated[str, typer.Option(help=_("The new verifier key, or its .vkey file."))],
    encryption_key: NewEncryptionOpt = None,
    witness_key: NewWitnessOpt = None,
    recovery_key: NewRecoveryOpt = None,
    by: ByOpt = None,
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Replace the party's signing key (the old one stops at this entry); --key signs (see --by)."""
    if not party:
        raise FormatError("whose key? give --party ID or set CBMNET_PARTY")
    doc = {"act": "key.rotate", "party": party, "by": by or party}
    _registry_act(hub, _new_keys(doc, signing_key, encryption_key, witness_key, recovery_key), key)


@party_app.command(
    "revoke",
    help=_(
        "Revoke one of the party's keys (e.g. stolen: sign with --by recovery); acts it "
        "signs are\n"
        "refused from this entry on."
    ),
)
def party_revoke(
    revoke: Annotated[str, typer.Option(help=_("The verifier key to revoke, or its .vkey file."))],
    reason: Annotated[str | None, typer.Option(help=_("Why, for the record."))] = None,
    by: ByOpt = None,
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Revoke one of the party's keys (e.g. stolen: sign with --by recovery); acts it signs are
    refused from this entry on."""
    if not party:
        raise FormatError("whose key? give --party ID or set CBMNET_PARTY")
    doc: dict[str, Any] = {
        "act": "key.revoke",
        "party": party,
        "by": by or party,
        "key": _key_arg(revoke, "--revoke", _check_vkey),
    }
    if reason is not None:
        doc["reason"] = reason
    _registry_act(hub, doc, key)


@party_app.command(
    "approve",
    help=_(
        "Vouch, as your party, for the exact new keys of a party that lost its signing "
        "and\n"
        "recovery keys; once a quorum has, it logs the rotation itself (--by quorum)."
    ),
)
def party_approve(
    for_party: Annotated[str, typer.Option("--for", help=_("The party that lost its keys (e.g. PAK)."))],
    signing_key: Annotated[str, typer.Option(help=_("Its new verifier key, as it gave it to you."))],
    encryption_key: NewEncryptionOpt = None,
    witness_key: NewWitnessOpt = None,
    recovery_key: NewRecoveryOpt = None,
    reason: Annotated[str | None, typer.Option(help=_("How you checked, for the record."))] = None,
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Vouch, as your party, for the exact new keys of a party that lost its signing and
    recovery keys; once a quorum has, it logs the rotation itself (--by quorum)."""
    if not party:
        raise FormatError("who approves? give --party ID or set CBMNET_PARTY")
    doc: dict[str, Any] = {"act": "key.approve", "party": party, "for": for_party}
    if reason is not None:
        doc["reason"] = reason
    _registry_act(hub, _new_keys(doc, signing_key, encryption_key, witness_key, recovery_key), key)


def _registry_act(hub: str | None, doc: dict[str, Any], key: Path | None) -> None:
    from cbmnet.acts.model import PT_REGISTRY

    with _client(hub, doc["party"], key) as c:
        _echo_json(_receipt(c.act(PT_REGISTRY, doc), party=doc.get("for", doc["party"])))


def parties(hub: HubOpt = None, party: PartyOpt = None, key: KeyOpt = None) -> None:
    """The registered parties with their active keys, as one JSON array."""
    with _client(hub, party, key) as c:
        _echo_json(c.parties(), pretty=True)


# ---- acts ---------------------------------------------------------------------------------


def submit(
    file: Annotated[str, typer.Argument(help=_("Event JSON (with 'agreement'), or - for stdin."))],
    signed: Annotated[
        bool, typer.Option("--signed", help=_("FILE is a DSSE envelope signed already."))
    ] = False,
    proof_out: Annotated[
        Path | None, typer.Option(help=_("Write the receipt's tlog-proof to this file."))
    ] = None,
    seal: Annotated[
        bool,
        typer.Option(
            "--seal",
            help=_(
                "Seal the event's 'body' (HPKE) to its readers: a request, its response or a "
                "notification with 'to'. The hub stores ciphertext only."
            ),
        ),
    ] = False,
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Sign an events-v1 event and log it; prints the receipt once its proof checks out."""
    from cbmnet.acts.model import PT_EVENT, read_act
    from cbmnet.acts.state import act_json
    from cbmnet.ledger import dsse

    if signed:
        raw = _read_bytes(file)
        env = _in_file(file, lambda: dsse.parse(raw))
        _in_file(file, lambda: read_act(env.payload_type, env.payload))
        with _client(hub, signed=False) as c:
            r = c.submit(raw)
    else:
        doc = _json_object(file)
        claimed = doc.get("party")
        if party and claimed is not None and claimed != party:
            raise FormatError(f"{file}: field 'party' is {claimed!r} but --party is {party!r}")
        who = party or (claimed if isinstance(claimed, str) else None)
        doc["party"] = who
        _in_file(file, lambda: read_act(PT_EVENT, act_json(doc)))
        with _client(hub, who, key) as c:
            r = _in_file(file, lambda: c.event(doc, seal=seal))
    out = _receipt(r, file=file)
    if proof_out is not None:
        try:
            proof_out.write_text(r["tlog_proof"])
        except OSError as e:
            raise FormatError(f"{proof_out}: {e.strerror}") from None
        out["proof"] = str(proof_out)
    _echo_json(out)


def _item(item: dict[str, Any], envelopes: bool) -> dict[str, Any]:
    return item if envelopes else {k: v for k, v in item.items() if k != "envelope"}


def inbox(
    after: Annotated[int, typer.Option(help=_("Only entries after this index."))] = -1,
    agreement: Annotated[str | None, typer.Option(help=_("Only this agreement's."))] = None,
    form: Annotated[str | None, typer.Option(help=_("Only this form (or hotline channel)."))] = None,
    author: Annotated[str | None, typer.Option(help=_("Only this party's acts."))] = None,
    kind: Annotated[str | None, typer.Option(help=_("Only this kind (event type or act)."))] = None,
    since: Annotated[str | None, typer.Option(help=_("Logged at or after this RFC 3339 time."))] = None,
    until: Annotated[str | None, typer.Option(help=_("Logged before this RFC 3339 time."))] = None,
    limit: Annotated[int, typer.Option(help=_("Page size."), min=1, max=1000)] = 100,
    all_pages: Annotated[bool, typer.Option("--all", help=_("Every page, not just the first."))] = False,
    envelopes: Annotated[bool, typer.Option(help=_("Include each signed envelope."))] = False,
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
    hpke: HpkeOpt = None,
) -> None:
    """What others addressed to you, oldest first, one JSON line each; fetching marks it delivered.

    An event's body is shown as ``body``; one sealed to you is opened with your hotline
    key (``--hpke``/``CBMNET_HPKE``)."""
    filters: dict[str, Any] = {
        "agreement": agreement,
        "form": form,
        "author": author,
        "kind": kind,
        "since": since,
        "until": until,
        "limit": limit,
    }
    from cbmnet.acts.model import PT_EVENT

    with _client(hub, party, key, hpke) as c:

        def shown(item: dict[str, Any]) -> dict[str, Any]:
            out = _item(item, envelopes)
            if item.get("payload_type") == PT_EVENT:
                try:
                    body = c.read_body(item)
                except CbmnetError as e:
                    out["body_error"] = str(e)[:300]
                else:
                    if body is not None:
                        out["body"] = body
            return out

        if all_pages:
            for item in c.iter_inbox(after=after, **filters):
                _echo_json(shown(item))
            return
        page = c.inbox(after=after, **filters)
        for item in page["items"]:
            _echo_json(shown(item))
        if len(page["items"]) >= limit:
            typer.echo(
                _("more after %(next)s: use --after %(next)s or --all") % {"next": page["next"]},
                err=True,
            )


def ack(
    index: Annotated[int, typer.Argument(help=_("The log index of the entry you acknowledge."), min=0)],
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Acknowledge an entry addressed to you (a signed act the sender can show)."""
    with _client(hub, party, key) as c:
        _echo_json(_receipt(c.ack(index), acknowledges=index))


def status(
    index: Annotated[int, typer.Argument(help=_("The log index of your entry."), min=0)],
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Per addressee of your entry: delivered (the hub's word) and acknowledged (theirs)."""
    with _client(hub, party, key) as c:
        _echo_json(c.status(index), pretty=True)


def obligations(
    agreement: AgreementOpt,
    as_of: Annotated[str | None, typer.Option("--as-of", help=_("RFC 3339 time; default: now."))] = None,
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Obligations and findings over the log that you may read, as JSON.

    A view, not a check: it exits 0 even when it lists findings (use ``cbmnet check`` on
    an events file for a pass/fail exit code).
    """
    with _client(hub, party, key) as c:
        _echo_json(c.obligations(agreement, as_of), pretty=True)


def quota(
    agreement: AgreementOpt,
    host: Annotated[str | None, typer.Option("--host", help=_("The State you would ask."))] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help=_("inspection, evaluation, flight, ..."))
    ] = None,
    request: Annotated[
        str | None, typer.Option("--request", help=_("As its host: the request you are to answer."))
    ] = None,
    eta: Annotated[str | None, typer.Option("--eta", help=_("Planned arrival (RFC 3339)."))] = None,
    until: Annotated[str | None, typer.Option("--until", help=_("Planned end (RFC 3339)."))] = None,
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Before you ask --host for a visit: is its quota spent? As a host, with --request:
    would refusing that request be a finding? Counted on the entries you may read."""
    with _client(hub, party, key) as c:
        if request is not None:
            if host is not None or kind is not None or eta is not None or until is not None:
                raise FormatError("quota: give either --request, or --host and --kind")
            _echo_json(c.request_quota(agreement, request), pretty=True)
        elif host is None or kind is None:
            raise FormatError("quota: --host and --kind are required (or --request, as the host)")
        else:
            _echo_json(c.quota(agreement, host, kind, eta=eta, until=until), pretty=True)


# ---- the hotline ------------------------------------------------------------------------

hotline_app = typer.Typer(help=_("End-to-end encrypted hotline channels."), no_args_is_help=True)


@hotline_app.command(
    "open",
    help=_("Open a channel between member parties under one agreement (you must be a member)."),
)
def hotline_open(
    channel: Annotated[str, typer.Argument(help=_("Channel id, e.g. 'ind-pak-dgmo'."))],
    agreement: AgreementOpt,
    member: Annotated[list[str], typer.Option("--member", help=_("A member party (repeatable)."))],
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Open a channel between member parties under one agreement (you must be a member)."""
    with _client(hub, party, key) as c:
        _echo_json(_receipt(c.open_channel(channel, agreement, member), channel=channel))


@hotline_app.command(
    "send",
    help=_("Encrypt TEXT to every member's key, sign it and log it; prints the receipt."),
)
def hotline_send(
    channel: Annotated[str, typer.Argument(help=_("The channel id."))],
    text: Annotated[str, typer.Argument(help=_("The message text."))],
    precedence: Annotated[str, typer.Option(help=_("flash, immediate, priority or routine."))],
    message_id: Annotated[
        str | None, typer.Option("--id", help=_("Message id; default a fresh random one."))
    ] = None,
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Encrypt TEXT to every member's key, sign it and log it; prints the receipt."""
    from cbmnet.communication.hotline import PRECEDENCES

    if precedence not in PRECEDENCES:
        raise FormatError(f"--precedence {precedence!r}: use {', '.join(PRECEDENCES)}")
    mid = message_id or uuid.uuid4().hex
    with _client(hub, party, key) as c:
        _echo_json(_receipt(c.send(channel, mid, precedence, text), channel=channel, id=mid))


@hotline_app.command(
    "listen",
    help=_(
        "Follow everything addressed to you, live: one JSON line per entry.\n"
        "\n"
        'Hotline messages carry their plaintext in "text" when --hpke is given (or\n'
        '"text_error" if it does not open); with --ack each one sent to you by another\n'
        'member is acknowledged and the line says at which index ("ack").'
    ),
)
def hotline_listen(
    after: Annotated[int, typer.Option(help=_("Start after this log index."))] = -1,
    count: Annotated[
        int | None,
        typer.Option(help=_("Exit after this many items (default: run until stopped)."), min=1),
    ] = None,
    ack_messages: Annotated[
        bool, typer.Option("--ack", help=_("Acknowledge each hotline message sent to you."))
    ] = False,
    envelopes: Annotated[bool, typer.Option(help=_("Include each signed envelope."))] = False,
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
    hpke: HpkeOpt = None,
) -> None:
    """Follow everything addressed to you, live: one JSON line per entry.

    Hotline messages carry their plaintext in "text" when --hpke is given (or
    "text_error" if it does not open); with --ack each one sent to you by another
    member is acknowledged and the line says at which index ("ack").
    """
    import asyncio

    import websockets.exceptions as wse

    with _client(hub, party, key, hpke) as c:
        try:
            asyncio.run(_listen(c, after, count, ack_messages, envelopes))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except wse.InvalidStatus as e:
            code = e.response.status_code
            cls = AuthError if code in (401, 403) else StoreError
            raise cls(f"the hub refused the stream ({code})") from None
        except wse.ConnectionClosedError as e:
            raise StoreError(f"the hub closed the stream ({e})") from None
        except (OSError, wse.WebSocketException) as e:
            raise StoreError(f"cannot follow the hub at {c.url}: {e}") from None


async def _listen(
    c: HubClient, after: int, count: int | None, ack_messages: bool, envelopes: bool
) -> None:
    from contextlib import aclosing

    from cbmnet.errors import ConflictError

    assert c.identity is not None
    me = c.identity.party
    seen = 0
    # Close the generator (and its socket) when --count stops early.
    async with aclosing(c.stream(after)) as items:
        async for item in items:
            out = _item(item, envelopes)
            if item.get("kind") == "hotline.message":
                payload = json.loads(base64.b64decode(item["envelope"]["payload"]))
                mine = me in payload.get("ciphertexts", {})
                if mine and c.identity.encryption_key is not None:
                    try:
                        out["text"] = c.read_hotline(item)
                    except CbmnetError as e:
                        out["text_error"] = str(e)
                if ack_messages and mine and item.get("author") != me:
                    try:
                        out["ack"] = c.ack(int(item["index"]))["index"]
                    except ConflictError:
                        out["ack"] = "already acknowledged"
            _echo_json(out)
            seen += 1
            if count is not None and seen >= count:
                return


observations_app = typer.Typer(
    help=_("Sensor observation batches: signed at the source, hash in the log, rows beside it."),
    no_args_is_help=True,
)

_FORMATS = {".csv": "csv", ".geojson": "geojson", ".json": "geojson", ".parquet": "parquet"}


@observations_app.command(
    "submit",
    help=_("Sign the file's SHA-256 and size, log them, then upload the rows beside the act."),
)
def observations_submit(
    file: Annotated[Path, typer.Argument(help=_("CSV, GeoJSON or Parquet file of observations."))],
    agreement: Annotated[str, typer.Option(help=_("The agreement the observations serve."))],
    batch: Annotated[str | None, typer.Option(help=_("Batch id (default: the file name)."))] = None,
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Sign the file's SHA-256 and size, log them, then upload the rows beside the act."""
    fmt = _FORMATS.get(file.suffix.lower())
    if fmt is None:
        raise FormatError(f"{file}: name it .csv, .geojson or .parquet so its format is known")
    try:
        data = file.read_bytes()
    except OSError as e:
        raise FormatError(f"{file}: {e.strerror}") from None
    from cbmnet.hub.service import describe_batch

    shape = describe_batch(data, fmt, str(file))  # a bad row is named before anything is signed
    with _client(hub, party, key) as c:
        r = c.submit_observations(agreement, batch or file.stem, data, fmt, **shape)
        _echo_json(_receipt(r, batch=batch or file.stem))


@observations_app.command(
    "fetch",
    help=_("Fetch a batch's rows and check them against the SHA-256 its provider signed."),
)
def observations_fetch(
    index: Annotated[int, typer.Argument(help=_("The log index of the batch's act."), min=0)],
    out: Annotated[Path, typer.Option(help=_("Where to write the rows."))],
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Fetch a batch's rows and check them against the SHA-256 its provider signed."""
    with _client(hub, party, key) as c:
        meta, data = c.fetch_observations(index)
    out.write_bytes(data)
    _echo_json(
        {"index": index, "batch": meta["batch"], "party": meta["party"], "sha256": meta["sha256"]}
    )


dashboard_app = typer.Typer(help=_("The hub's web dashboard."), no_args_is_help=True)


@dashboard_app.command(
    "login",
    help=_(
        "Print a one-time sign-in link (a minute, one use): your key signs the hub's\n"
        "challenge, no password; the link carries a code, never your API token."
    ),
)
def dashboard_login(hub: HubOpt = None, party: PartyOpt = None, key: KeyOpt = None) -> None:
    """Print a one-time sign-in link (a minute, one use): your key signs the hub's
    challenge, no password; the link carries a code, never your API token."""
    with _client(hub, party, key) as c:
        typer.echo(signin_link(c))


def signin_link(c: HubClient) -> str:
    """A dashboard sign-in link with a one-time code from ``POST /v1/auth/signin-code``."""
    from urllib.parse import quote

    code = c._request("POST", "/v1/auth/signin-code").json()["code"]
    return f"{c.url}/dashboard/login?code={quote(str(code), safe='')}"


alerts_app = typer.Typer(
    help=_("Alerts by e-mail and webhook when something needs you."), no_args_is_help=True
)


@alerts_app.command(
    "subscribe",
    help=_("Replace your alert subscription; alerts start from now (the past is not replayed)."),
)
def alerts_subscribe(
    email: Annotated[
        list[str] | None, typer.Option(help=_("An address to mail (repeat for more)."))
    ] = None,
    webhook: Annotated[
        list[str] | None, typer.Option(help=_("An https URL to POST to, signed by the hub (repeat)."))
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            help=_("addressed, hotline, no_answer, overdue, due_7d, due_24h, finding; default all.")
        ),
    ] = None,
    agreement: Annotated[
        list[str] | None, typer.Option(help=_("Only these agreements; default all."))
    ] = None,
    precedence: Annotated[
        str, typer.Option(help=_("The lowest hotline precedence alerted (routine … flash)."))
    ] = "routine",
    hub: HubOpt = None,
    party: PartyOpt = None,
    key: KeyOpt = None,
) -> None:
    """Replace your alert subscription; alerts start from now (the past is not replayed)."""
    doc: dict[str, Any] = {"emails": email or [], "webhooks": webhook or [], "precedence": precedence}
    if kind:
        doc["kinds"] = kind
    if agreement:
        doc["agreements"] = agreement
    with _client(hub, party, key) as c:
        _echo_json(c._request("PUT", "/v1/alerts", json=doc).json(), pretty=True)


@alerts_app.command("show", help=_("Your alert subscription."))
def alerts_show(hub: HubOpt = None, party: PartyOpt = None, key: KeyOpt = None) -> None:
    """Your alert subscription."""
    with _client(hub, party, key) as c:
        _echo_json(c._request("GET", "/v1/alerts").json(), pretty=True)


@alerts_app.command(
    "log",
    help=_("Your latest alerts and how their delivery went, newest first, one JSON line each."),
)
def alerts_log(hub: HubOpt = None, party: PartyOpt = None, key: KeyOpt = None) -> None:
    """Your latest alerts and how their delivery went, newest first, one JSON line each."""
    with _client(hub, party, key) as c:
        for item in c._request("GET", "/v1/alerts/log").json()["items"]:
            _echo_json(item)


@alerts_app.command("stop", help=_("Remove your subscription (what is queued still goes out)."))
def alerts_stop(hub: HubOpt = None, party: PartyOpt = None, key: KeyOpt = None) -> None:
    """Remove your subscription (what is queued still goes out)."""
    with _client(hub, party, key) as c:
        _echo_json(c._request("DELETE", "/v1/alerts").json(), pretty=True)


def add_hub_verbs(app: typer.Typer, keys_app: typer.Typer) -> None:
    """Register these verbs on the ``cbmnet`` app (called once by ``cbmnet.cli.main``)."""
    keys_app.command(
        "hpke",
        help=_("Make an X25519 key for hotline bodies: NAME.hpke (private, owner-only), NAME.hpke.pub."),
    )(keys_hpke)
    app.add_typer(hub_app, name="hub")
    app.command(
        "serve",
        help=_("Run the hub in the foreground (JSON log lines on stderr) until SIGTERM or Ctrl-C."),
    )(serve)
    app.add_typer(party_app, name="party")
    app.command("parties", help=_("The registered parties with their active keys, as one JSON array."))(
        parties
    )
    app.command(
        "submit",
        help=_("Sign an events-v1 event and log it; prints the receipt once its proof checks out."),
    )(submit)
    app.command(
        "inbox",
        help=_(
            "What others addressed to you, oldest first, one JSON line each; fetching marks "
            "it delivered.\n"
            "\n"
            "An event's body is shown as ``body``; one sealed to you is opened with your "
            "hotline\n"
            "key (``--hpke``/``CBMNET_HPKE``)."
        ),
    )(inbox)
    app.command(
        "ack", help=_("Acknowledge an entry addressed to you (a signed act the sender can show).")
    )(ack)
    app.command(
        "status",
        help=_("Per addressee of your entry: delivered (the hub's word) and acknowledged (theirs)."),
    )(status)
    app.command(
        "obligations",
        help=_(
            "Obligations and findings over the log that you may read, as JSON.\n"
            "\n"
            "A view, not a check: it exits 0 even when it lists findings (use ``cbmnet "
            "check`` on\n"
            "an events file for a pass/fail exit code)."
        ),
    )(obligations)
    app.command(
        "quota",
        help=_(
            "Before you ask --host for a visit: is its quota spent? As a host, with "
            "--request:\n"
            "would refusing that request be a finding? Counted on the entries you may read."
        ),
    )(quota)
    app.add_typer(hotline_app, name="hotline")
    app.add_typer(observations_app, name="observations")
    app.add_typer(dashboard_app, name="dashboard")
    app.add_typer(alerts_app, name="alerts")
