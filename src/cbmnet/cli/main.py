"""The ``cbmnet`` command: thin verbs over the ledger, the log and the witness.

Exit codes, mapped here and only here from the error tree: 0 ok, 1 a check failed
(``VerificationError``, ``ConflictError``), 2 bad input (everything else a user can
cause). No traceback reaches the user for an error of theirs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cbmnet.cli.files import MAX_EVENTS_BYTES
from cbmnet.cli.files import read_bytes as _read_bytes
from cbmnet.cli.files import read_text as _read_text
from cbmnet.cli.hub import add_hub_verbs, aligned
from cbmnet.cli.lang import findings_title, language_code
from cbmnet.cli.mirror import add_mirror_verb
from cbmnet.cli.simulate import add_simulate_verb
from cbmnet.cli.verify import add_verify_verbs
from cbmnet.errors import CbmnetError, FormatError
from cbmnet.i18n import LANGUAGES, ngettext
from cbmnet.i18n import gettext as _

if TYPE_CHECKING:
    from cbmnet.log.service import TransparencyLog

app = typer.Typer(
    help=_("cbmnet: signed, logged confidence-building measures."),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help=_("Party, log and witness keys."), no_args_is_help=True)
envelope_app = typer.Typer(help=_("DSSE envelopes: sign and check acts."), no_args_is_help=True)
log_app = typer.Typer(help=_("Run a transparency log by hand."), no_args_is_help=True)
witness_app = typer.Typer(
    help=_("Witness a hub over HTTP (--hub ...), or check one request by hand (cosign)."),
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
app.add_typer(envelope_app, name="envelope")
app.add_typer(log_app, name="log")
app.add_typer(witness_app, name="witness")
agreements_app = typer.Typer(help=_("Agreements as code: list, show, validate."), no_args_is_help=True)
app.add_typer(agreements_app, name="agreements")
add_hub_verbs(app, keys_app)
add_verify_verbs(app)
add_simulate_verb(app)
add_mirror_verb(app)


def _check_lang(value: str | None) -> str | None:
    """``--lang`` names one of the six languages (``fr``, or as the locale says ``fr_FR.UTF-8``)."""
    if value is not None and language_code(value) is None:
        raise typer.BadParameter(
            _("unknown language %(code)s: use one of %(codes)s")
            % {"code": repr(value), "codes": ", ".join(LANGUAGES)}
        )
    return value


@app.callback()
def cbmnet_root(
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            help=_(
                "The language of messages: en, fr, es, ru, zh or ar "
                "(default: CBMNET_LANG, else the locale)."
            ),
            callback=_check_lang,
        ),
    ] = None,
) -> None:
    """Options for every command.

    ``--lang`` only needs checking here: the language was chosen when ``cbmnet.cli`` was
    imported (``cli/lang.py`` reads it from the command line first), since the help texts
    are built in it.
    """


DEFAULT_DB = "sqlite:///data/cbmnet.db"
DbOpt = Annotated[
    str, typer.Option("--db", envvar="CBMNET_DB", help=_("sqlite:///PATH or postgresql://..."))
]
KeyOpt = Annotated[Path, typer.Option("--key", help=_("File holding a PRIVATE+KEY+... signer key."))]


def _skey(path: Path) -> str:
    from cbmnet.ledger.note import parse_signer_key

    text = _read_text(str(path)).strip()
    parse_signer_key(text)
    return text


def _vkey(value: str) -> str:
    """A verifier key given inline or as a file holding it."""
    from cbmnet.ledger.note import new_verifier

    text = _read_text(value).strip() if os.path.isfile(value) else value.strip()
    new_verifier(text)
    return text


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ---- keys -------------------------------------------------------------------------------


@keys_app.command(
    "generate",
    help=_("Make an Ed25519 key: NAME.key (private, owner-only), NAME.vkey, NAME.cosigner.vkey."),
)
def keys_generate(
    name: Annotated[str, typer.Option(help=_("Key name, e.g. an origin like 'hub.example/log'."))],
    out: Annotated[Path, typer.Option(help=_("Folder for the key files."))] = Path("."),
) -> None:
    """Make an Ed25519 key: NAME.key (private, owner-only), NAME.vkey, NAME.cosigner.vkey."""
    from cbmnet.ledger.note import generate_key, parse_signer_key

    skey, vkey = generate_key(name)
    out.mkdir(parents=True, exist_ok=True)
    base = out / _safe_name(name)
    key_path = Path(str(base) + ".key")
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise FormatError(f"{key_path} exists; not overwriting a private key") from e
    with os.fdopen(fd, "w") as f:
        f.write(skey + "\n")
    cosigner_vkey = parse_signer_key(skey).cosigner_verifier_key
    Path(str(base) + ".vkey").write_text(vkey + "\n")
    Path(str(base) + ".cosigner.vkey").write_text(cosigner_vkey + "\n")
    for line in aligned(
        [
            (_("private key:"), str(key_path)),
            (_("verifier key:"), vkey),
            (_("cosigner (witness):"), cosigner_vkey),
        ],
        gap=2,
    ):
        typer.echo(line)


# ---- envelopes --------------------------------------------------------------------------


@envelope_app.command("sign", help=_("Sign a payload into a DSSE envelope (JSON on stdout)."))
def envelope_sign(
    key: KeyOpt,
    payload_type: Annotated[str, typer.Option("--type", help=_("DSSE payloadType."))],
    payload: Annotated[str, typer.Argument(help=_("Payload file, or - for stdin."))] = "-",
) -> None:
    """Sign a payload into a DSSE envelope (JSON on stdout)."""
    from cbmnet.ledger import dsse

    typer.echo(dsse.sign(payload_type, _read_bytes(payload), [_skey(key)]).decode())


@envelope_app.command(
    "verify",
    help=_("Check an envelope's signature; prints its payload type and size."),
)
def envelope_verify(
    vkey: Annotated[list[str], typer.Option("--vkey", help=_("Author verifier key (repeatable)."))],
    envelope: Annotated[str, typer.Argument(help=_("Envelope file, or -."))] = "-",
) -> None:
    """Check an envelope's signature; prints its payload type and size."""
    from cbmnet.ledger import dsse
    from cbmnet.ledger.note import new_verifier

    keys = [new_verifier(_vkey(v)).public_key for v in vkey]
    env = dsse.verify(_read_bytes(envelope), keys)
    n = len(env.payload)
    typer.echo(
        ngettext("ok: %(type)s, %(n)s byte", "ok: %(type)s, %(n)s bytes", n)
        % {"type": env.payload_type, "n": n}
    )


# ---- log --------------------------------------------------------------------------------


def _open_log(db: str, key: Path | None = None) -> TransparencyLog:
    from cbmnet.log.service import TransparencyLog
    from cbmnet.store import open_store

    return TransparencyLog(open_store(db), signer_key=_skey(key) if key else None)


@log_app.command("init", help=_("Create a log in the store; its origin is the key's name."))
def log_init(key: KeyOpt, db: DbOpt = DEFAULT_DB) -> None:
    """Create a log in the store; its origin is the key's name."""
    from cbmnet.log.service import TransparencyLog
    from cbmnet.store import open_store

    log = TransparencyLog.create(open_store(db, create=True), _skey(key))
    typer.echo(_("log %(origin)s in %(store)s") % {"origin": log.origin, "store": log.store.url})
    typer.echo(_("verifier key:") + " " + log.vkey)


@log_app.command(
    "append",
    help=_("Verify envelopes and log them in one durable commit; prints one JSON receipt each."),
)
def log_append(
    author: Annotated[
        list[str], typer.Option("--author", help=_("Verifier key allowed to author (repeatable)."))
    ],
    envelopes: Annotated[list[str], typer.Argument(help=_("Envelope files, or - for stdin."))],
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Verify envelopes and log them in one durable commit; prints one JSON receipt each."""
    from cbmnet.ledger.entry import format_time_ms
    from cbmnet.ledger.note import new_verifier

    keys = [new_verifier(_vkey(a)).public_key for a in author]
    data = [_read_bytes(p) for p in envelopes]
    for path, r in zip(envelopes, _open_log(db).append_batch(data, keys), strict=True):
        typer.echo(
            json.dumps(
                {
                    "file": path,
                    "index": r.index,
                    "integrated_at": format_time_ms(r.integrated_ms),
                    "duplicate": r.duplicate,
                }
            )
        )


@log_app.command(
    "checkpoint",
    help=_("Sign a checkpoint of the current tree (if it grew) and print it with cosignatures."),
)
def log_checkpoint(key: KeyOpt, db: DbOpt = DEFAULT_DB) -> None:
    """Sign a checkpoint of the current tree (if it grew) and print it with cosignatures."""
    log = _open_log(db, key)
    typer.echo(log.signed_checkpoint(log.checkpoint()), nl=False)


@log_app.command("proof", help=_("Export entry INDEX as an offline c2sp.org/tlog-proof@v1 bundle."))
def log_proof(
    index: int,
    db: DbOpt = DEFAULT_DB,
    out: Annotated[Path | None, typer.Option(help=_("Write the .tlog-proof here."))] = None,
) -> None:
    """Export entry INDEX as an offline c2sp.org/tlog-proof@v1 bundle."""
    from cbmnet.ledger.tlogproof import format_proof

    text = format_proof(_open_log(db).proof_bundle(index))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(_("wrote %(path)s") % {"path": out})


@log_app.command(
    "verify-proof",
    help=_("Verify a proof bundle offline: log signature, witness quorum, inclusion, author."),
)
def log_verify_proof(
    proof: Annotated[str, typer.Argument(help=_("A .tlog-proof file, or -."))],
    vkey: Annotated[str | None, typer.Option("--vkey", help=_("The log's verifier key."))] = None,
    policy: Annotated[
        Path | None, typer.Option(help=_("A c2sp.org/tlog-policy file (log and witness quorum)."))
    ] = None,
    author: Annotated[
        list[str] | None, typer.Option("--author", help=_("Check the envelope's author too."))
    ] = None,
) -> None:
    """Verify a proof bundle offline: log signature, witness quorum, inclusion, author."""
    from cbmnet.ledger import dsse
    from cbmnet.ledger.note import new_verifier
    from cbmnet.ledger.policy import parse_policy, single_log_policy
    from cbmnet.ledger.tlogproof import verify_entry_proof

    if policy is not None:
        pol = parse_policy(_read_text(str(policy)))
    elif vkey is not None:
        pol = single_log_policy(_vkey(vkey))
    else:
        raise FormatError("give the log's --vkey or a --policy")
    got = verify_entry_proof(_read_text(proof), pol)
    cp = got.agreed.checkpoint
    env = dsse.parse(got.entry.envelope)
    if author:
        env = dsse.verify(got.entry.envelope, [new_verifier(_vkey(a)).public_key for a in author])
    typer.echo(
        _("ok: entry %(index)s of %(origin)s (tree size %(size)s)")
        % {"index": got.index, "origin": cp.origin, "size": cp.size}
    )
    typer.echo(_("integrated at %(time)s") % {"time": got.entry.integrated_at})
    n = len(env.payload)
    typer.echo(
        ngettext("payload type %(type)s, %(n)s byte", "payload type %(type)s, %(n)s bytes", n)
        % {"type": env.payload_type, "n": n}
    )
    if got.agreed.cosigned_by:
        names = ", ".join(sorted(got.agreed.cosigned_by))
        typer.echo(_("cosigned by %(names)s") % {"names": names})


@log_app.command(
    "witness-request",
    help=_("Print the tlog-witness add-checkpoint body for the latest checkpoint."),
)
def log_witness_request(
    old: Annotated[int, typer.Option(help=_("Size the witness last cosigned (0 if never)."))],
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Print the tlog-witness add-checkpoint body for the latest checkpoint."""
    from cbmnet.ledger.tlogproof import format_add_checkpoint

    typer.echo(format_add_checkpoint(_open_log(db).witness_request(old)), nl=False)


@log_app.command(
    "add-cosignature",
    help=_("Attach a witness's cosignature to a stored checkpoint, after verifying it."),
)
def log_add_cosignature(
    witness: Annotated[list[str], typer.Option("--witness", help=_("Witness cosigner vkey."))],
    lines: Annotated[str, typer.Argument(help=_("File with the witness's cosignature lines, or -."))],
    size: Annotated[int | None, typer.Option(help=_("Checkpoint size (default: latest)."))] = None,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Attach a witness's cosignature to a stored checkpoint, after verifying it."""
    log = _open_log(db)
    at = log.latest_checkpoint().size if size is None else size
    n = log.add_cosignatures(at, _read_text(lines), [_vkey(w) for w in witness])
    typer.echo(
        ngettext(
            "added %(n)s cosignature to the checkpoint of size %(size)s",
            "added %(n)s cosignatures to the checkpoint of size %(size)s",
            n,
        )
        % {"n": n, "size": at}
    )


@log_app.command(
    "audit",
    help=_(
        "Recompute every leaf, node and root; check every checkpoint and cosignature.\n"
        "\n"
        "With --hub: from outside, over HTTP; --state makes each run check the last one's"
        " tree."
    ),
)
def log_audit(
    db: DbOpt = DEFAULT_DB,
    vkey: Annotated[str | None, typer.Option("--vkey", help=_("Pin the log's key."))] = None,
    hub: Annotated[
        str | None, typer.Option("--hub", help=_("Audit this hub over HTTP instead of a local store."))
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(help=_("(--hub) JSON file remembering the last verified checkpoint.")),
    ] = None,
    party: Annotated[
        str | None, typer.Option(help=_("(--hub) Read entries as this party id (or 'secretariat')."))
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help=_("(--hub) That party's signer key."))
    ] = None,
    evidence: Annotated[
        Path | None,
        typer.Option(
            help=_(
                "(--hub) If the audit finds a key change its holder did not make, write the "
                "cbmnet/unauthorised-key-change/v1 document here (checked with the log key alone)."
            )
        ),
    ] = None,
) -> None:
    """Recompute every leaf, node and root; check every checkpoint and cosignature.

    With --hub: from outside, over HTTP; --state makes each run check the last one's tree.
    """
    from cbmnet.log.audit import audit_log
    from cbmnet.store import open_store

    if hub is not None:
        _audit_hub(hub, vkey, state, party, key, evidence)
        return
    if state is not None or party is not None or key is not None or evidence is not None:
        raise FormatError("--state, --party, --key and --evidence audit a hub: give its --hub URL too")
    r = audit_log(open_store(db), _vkey(vkey) if vkey else None)
    typer.echo(
        _(
            "ok: %(size)s entries, %(checkpoints)s checkpoints, %(cosignatures)s cosignatures; "
            "root %(root)s"
        )
        % {
            "size": r.size,
            "checkpoints": r.checkpoints,
            "cosignatures": r.cosignatures,
            "root": r.root_hash.hex(),
        }
    )
    if r.uncovered:
        typer.echo(
            ngettext(
                "note: the last %(n)s entry is not yet covered by a signed checkpoint",
                "note: the last %(n)s entries are not yet covered by a signed checkpoint",
                r.uncovered,
            )
            % {"n": r.uncovered}
        )


@log_app.command(
    "info",
    help=_("Show the log's origin, key, size and latest checkpoint (and if it is agreed)."),
)
def log_info(
    db: DbOpt = DEFAULT_DB,
    policy: Annotated[
        Path | None, typer.Option(help=_("Say whether the latest checkpoint meets this policy."))
    ] = None,
) -> None:
    """Show the log's origin, key, size and latest checkpoint (and if it is agreed)."""
    from cbmnet.ledger.policy import parse_policy, verify_checkpoint

    log = _open_log(db)
    rows = [(_("origin:"), log.origin), (_("verifier key:"), log.vkey), (_("size:"), str(log.size()))]
    typer.echo("\n".join(aligned(rows, gap=1)))
    cp = log.store.latest_checkpoint()
    if cp is None:
        typer.echo(_("no checkpoint signed yet"))
        return
    signed = log.signed_checkpoint(cp)
    typer.echo(_("latest checkpoint:") + "\n" + signed, nl=False)
    if policy is not None:
        agreed = verify_checkpoint(signed, parse_policy(_read_text(str(policy))))
        names = ", ".join(sorted(agreed.cosigned_by)) or _("no witness needed")
        typer.echo(
            _("agreed under %(policy)s: cosigned by %(names)s") % {"policy": policy, "names": names}
        )


def _audit_hub(
    hub: str,
    vkey: str | None,
    state: Path | None,
    party: str | None,
    key: Path | None,
    evidence: Path | None = None,
) -> None:
    from cbmnet.errors import VerificationError
    from cbmnet.ledger.encoding import b64
    from cbmnet.party.audit import audit_hub, key_change_evidence
    from cbmnet.party.client import HubClient, Identity

    if vkey is None:
        raise FormatError("auditing a hub needs the log's --vkey, pinned: not the hub's word")
    if (party is None) != (key is None):
        raise FormatError("give --party and --key together (or neither, to check hashes only)")
    who = Identity(party, _skey(key)) if party is not None and key is not None else None
    with HubClient(hub, who) as client:
        try:
            r = audit_hub(client, _vkey(vkey), state)
        except VerificationError:
            found = None
            if evidence is not None:
                try:
                    found = key_change_evidence(client, _vkey(vkey))
                except CbmnetError as e:  # the audit's own finding is the one to report
                    typer.echo(_("evidence: none written: %(error)s") % {"error": e}, err=True)
            if found is not None and evidence is not None:
                evidence.write_text(found.to_json() + "\n", encoding="utf-8")
                typer.echo(
                    _(
                        "evidence: %(finding)s; written to %(path)s (%(party)s's registry "
                        "entries under the log's checkpoint of size %(size)s)"
                    )
                    % {
                        "finding": found.finding,
                        "path": evidence,
                        "party": found.party,
                        "size": found.checkpoint.size,
                    },
                    err=True,
                )
            raise
    typer.echo(
        _(
            "ok: %(origin)s: %(size)s leaves, %(checkpoints)s checkpoints, %(cosignatures)s "
            "cosignatures, %(entries)s entries read and checked"
        )
        % {
            "origin": r.origin,
            "size": r.size,
            "checkpoints": r.checkpoints,
            "cosignatures": r.cosignatures,
            "entries": r.entries_checked,
        }
    )
    typer.echo(
        _("latest checkpoint: size %(size)s, root %(root)s")
        % {"size": r.checkpoint_size, "root": b64(r.root_hash)}
    )
    if r.previous_size is not None:
        typer.echo(
            _("consistent with the checkpoint of size %(size)s verified last time")
            % {"size": r.previous_size}
        )
    for who_, at in r.key_ends:
        typer.echo(
            _("key boundary: a key of %(party)s ended at entry %(index)s; it signs nothing after it")
            % {"party": who_, "index": at}
        )
    if not r.cosigners_mapped:
        typer.echo(_("note: without --party/--key, cosignatures were parsed but not matched to parties"))
    if r.uncovered:
        typer.echo(
            ngettext(
                "note: the last %(n)s leaf is not yet covered by a signed checkpoint",
                "note: the last %(n)s leaves are not yet covered by a signed checkpoint",
                r.uncovered,
            )
            % {"n": r.uncovered}
        )


# ---- witness ----------------------------------------------------------------------------


def _pause(seconds: float) -> None:
    """Between witnessing rounds (a seam for tests)."""
    time.sleep(seconds)


@witness_app.callback(invoke_without_command=True)
def witness_hub_rounds(
    ctx: typer.Context,
    hub: Annotated[str | None, typer.Option("--hub", help=_("The hub to witness (its URL)."))] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help=_("The witness's signer key (PRIVATE+KEY+...)."))
    ] = None,
    log: Annotated[str | None, typer.Option("--log", help=_("The hub log's verifier key."))] = None,
    state: Annotated[
        str, typer.Option(envvar="CBMNET_WITNESS_DB", help=_("The witness's own store URL."))
    ] = "sqlite:///data/witness.db",
    every: Annotated[
        float | None, typer.Option(help=_("Repeat every SECONDS until interrupted (default: once)."))
    ] = None,
) -> None:
    """Cosign the hub's latest checkpoint if it extends what this witness cosigned before."""
    from cbmnet.party.witness import Witness
    from cbmnet.store import open_store

    if ctx.invoked_subcommand is not None:
        if hub is not None:
            raise FormatError("--hub witnesses a hub: give it without a subcommand")
        return
    if hub is None or key is None or log is None:
        raise FormatError("witnessing a hub needs --hub, --key and --log")
    if every is not None and not every > 0:
        raise FormatError("--every must be a positive number of seconds")
    from cbmnet.errors import RateLimitedError, StoreError
    from cbmnet.ledger.encoding import b64
    from cbmnet.party.client import HubClient
    from cbmnet.party.witness import witness_hub

    store = open_store(state, create=True)
    try:
        w = Witness(store, _skey(key), [_vkey(log)])
        with HubClient(hub) as client:
            while True:
                try:
                    r = witness_hub(client, w)
                    typer.echo(
                        _("cosigned %(origin)s size %(size)s root %(root)s (held size %(old)s before)")
                        % {
                            "origin": r.origin,
                            "size": r.size,
                            "root": b64(r.root_hash),
                            "old": r.old_size,
                        }
                    )
                except (StoreError, RateLimitedError) as e:
                    if every is None:
                        raise
                    typer.echo(
                        _("warning: %(error)s; next round in %(seconds)s s")
                        % {"error": e.diagnostics(), "seconds": f"{every:g}"},
                        err=True,
                    )
                if every is None:
                    return
                _pause(every)
    except KeyboardInterrupt:
        return
    finally:
        store.close()


@witness_app.command(
    "cosign",
    help=_("Check an add-checkpoint request against held state and print the cosignature line."),
)
def witness_cosign(
    key: KeyOpt,
    log: Annotated[list[str], typer.Option("--log", help=_("Verifier key of a log followed."))],
    request: Annotated[str, typer.Argument(help=_("add-checkpoint request body file, or -."))] = "-",
    state: Annotated[
        str, typer.Option(envvar="CBMNET_WITNESS_DB", help=_("The witness's own store URL."))
    ] = "sqlite:///data/witness.db",
) -> None:
    """Check an add-checkpoint request against held state and print the cosignature line."""
    from cbmnet.party.witness import Witness
    from cbmnet.store import open_store

    w = Witness(open_store(state, create=True), _skey(key), [_vkey(v) for v in log])
    typer.echo(w.add_checkpoint(_read_text(request)), nl=False)


# ---- agreements and compliance ----------------------------------------------------------


@agreements_app.command("list", help=_("The bundled agreements (their ids are stable)."))
def agreements_list() -> None:
    """The bundled agreements (their ids are stable)."""
    from cbmnet.agreements.loader import bundled, bundled_ids

    for aid in bundled_ids():
        a = bundled(aid)
        n = len(a.measures)
        typer.echo(
            ngettext("%(id)s %(n)s measure   %(title)s", "%(id)s %(n)s measures  %(title)s", n)
            % {"id": f"{aid:45s}", "n": f"{n:3d}", "title": a.title}
        )


@agreements_app.command(
    "show",
    help=_("A readable summary: each measure, its kind, provision and figures."),
)
def agreements_show(agreement: str) -> None:
    """A readable summary: each measure, its kind, provision and figures."""
    from cbmnet.agreements.loader import load_agreement

    a = load_agreement(agreement)
    typer.echo(a.title)
    typer.echo(
        _("%(id)s, version %(version)s; parties: %(parties)s")
        % {"id": a.id, "version": a.version, "parties": ", ".join(a.parties)}
    )
    if a.source:
        typer.echo(_("source: %(source)s") % {"source": a.source})
    for name, z in a.zones.items():
        if z.border:
            line = _("zone %(name)s: border %(first)s-%(second)s") % {
                "name": name,
                "first": z.border[0],
                "second": z.border[1],
            }
        else:
            line = _("zone %(name)s: geometry") % {"name": name}
        typer.echo(line)
    for m in a.measures:
        figures = m.model_dump(
            exclude={"id", "kind", "provision", "title", "rule", "unconfirmed"},
            exclude_defaults=True,
        )
        typer.echo(f"\n[{m.kind}] {m.id}: {m.title or m.rule} ({m.provision})")
        rule = _("rule %(rule)s: %(figures)s")
        typer.echo("  " + rule % {"rule": m.rule, "figures": json.dumps(figures, ensure_ascii=False)})
        if m.unconfirmed:
            typer.echo("  " + _("UNCONFIRMED: %(what)s") % {"what": m.unconfirmed})


@agreements_app.command(
    "validate",
    help=_("Check an agreement file against the schema; exit 2 naming the field if wrong."),
)
def agreements_validate(path: Path) -> None:
    """Check an agreement file against the schema; exit 2 naming the field if wrong."""
    from cbmnet.agreements.loader import load_agreement_file, resolve_zones

    a = load_agreement_file(path)
    resolve_zones(a)
    n = len(a.measures)
    typer.echo(
        ngettext("ok: %(id)s (%(n)s measure)", "ok: %(id)s (%(n)s measures)", n) % {"id": a.id, "n": n}
    )


@agreements_app.command("schema", help=_("Print the agreement files' JSON Schema."))
def agreements_schema() -> None:
    """Print the agreement files' JSON Schema."""
    from cbmnet.agreements.loader import json_schema

    typer.echo(json_schema(), nl=False)


@app.command(
    "check",
    help=_("Compute obligations and findings; exit 0 none, 1 findings, 2 bad input."),
)
def check(
    agreement: Annotated[str, typer.Option(help=_("A bundled agreement id or a file."))],
    events: Annotated[str, typer.Option(help=_("Events file (JSON array or JSON Lines), or -."))],
    as_of: Annotated[str | None, typer.Option("--as-of", help=_("RFC 3339 time; default: now."))] = None,
    fmt: Annotated[str, typer.Option("--format", help=_("json or table."))] = "json",
) -> None:
    """Compute obligations and findings; exit 0 none, 1 findings, 2 bad input."""
    import time as _t

    from cbmnet import collector
    from cbmnet.agreements.loader import load_agreement, resolve_zones
    from cbmnet.compliance.engine import evaluate
    from cbmnet.compliance.events import check_membership, load_events_text
    from cbmnet.compliance.timeutil import parse_time

    if fmt not in ("json", "table"):
        raise FormatError("--format must be json or table")
    a = load_agreement(agreement)
    with collector.paused():  # millions of small acyclic objects: no rescans
        evs = load_events_text(_read_text(events, MAX_EVENTS_BYTES), events)
        check_membership(evs, a, events)  # a non-member's event is bad input, never ignored
        when = parse_time(as_of, "--as-of") if as_of else _t.time_ns() // 1_000_000
        report = evaluate(a, evs, when, resolve_zones(a))
        # Written while the collector is still paused: once it resumes, the report's
        # allocations would make it scan the million objects parsed above, for nothing.
        if fmt == "json":
            typer.echo(report.dumps(), nl=False)
        else:
            _print_table(report)
        _end(1 if report.findings else 0)


_FAST_EXIT = False
"""Set by ``main`` when this process is the CLI itself (never for in-process callers)."""


def _end(code: int) -> None:
    """End a batch command whose answer is written. In its own process, skip the
    interpreter's freeing of every parsed object one by one: at 100,000 events that took
    0.45 s after the report was out, a sixth of ``cbmnet check`` (issue 17). Nothing is
    left to close (no store, no thread); both streams are flushed first."""
    if _FAST_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        raise typer.Exit(code)


@app.command(
    "report",
    help=_(
        "The annual implementation report (per party: owed, met, late, missed, findings, "
        "each\n"
        "with the events it counts) as JSON, recomputed from an events file: the figures "
        "the\n"
        "hub's GET /v1/report and dashboard show, for anyone to check."
    ),
)
def annual_report(
    agreement: Annotated[str, typer.Option(help=_("A bundled agreement id or a file."))],
    year: Annotated[int, typer.Option(help=_("The calendar year reported on."), min=1970, max=2199)],
    events: Annotated[str, typer.Option(help=_("Events file (JSON array or JSON Lines), or -."))],
    as_of: Annotated[str | None, typer.Option("--as-of", help=_("RFC 3339 time; default: now."))] = None,
    parties: Annotated[
        str | None,
        typer.Option(help=_("Comma-separated party ids to report on; default: every author.")),
    ] = None,
    pdf: Annotated[Path | None, typer.Option(help=_("Also write the report as a PDF here."))] = None,
) -> None:
    """The annual implementation report (per party: owed, met, late, missed, findings, each
    with the events it counts) as JSON, recomputed from an events file: the figures the
    hub's GET /v1/report and dashboard show, for anyone to check."""
    from cbmnet import collector
    from cbmnet.agreements.loader import load_agreement, resolve_zones
    from cbmnet.compliance.annual import annual
    from cbmnet.compliance.engine import evaluate
    from cbmnet.compliance.events import check_membership, load_events_text
    from cbmnet.compliance.timeutil import parse_time

    a = load_agreement(agreement)
    with collector.paused():
        evs = load_events_text(_read_text(events, MAX_EVENTS_BYTES), events)
        check_membership(evs, a, events)
        when = parse_time(as_of, "--as-of") if as_of else time.time_ns() // 1_000_000
        report = evaluate(a, evs, when, resolve_zones(a))
    who = [p for p in parties.split(",") if p] if parties else sorted({e.party for e in evs})
    entries = {e.id: e.raw["log_index"] for e in evs if isinstance(e.raw.get("log_index"), int)}
    doc = annual(report, year, who, entries)
    if pdf is not None:
        from cbmnet.reports import annual_pdf

        try:
            pdf.write_bytes(annual_pdf(doc))
        except OSError as e:
            raise FormatError(f"--pdf {pdf}: {e.strerror or e}") from None
    typer.echo(json.dumps(doc, sort_keys=True))


def _print_table(report: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from cbmnet.compliance.report import Report

    assert isinstance(report, Report)
    doc = report.to_json()
    n = len(doc["findings"])
    t = Table(title=findings_title(doc["agreement"], doc["as_of"], n))
    columns = {
        "severity": _("severity"),
        "code": _("code"),
        "party": _("party"),
        "provision": _("provision"),
        "due": _("due"),
        "subjects": _("subjects"),
        "message": _("message"),
    }
    for col, header in columns.items():
        t.add_column(header, no_wrap=col in ("code", "party", "due"))
    for f in doc["findings"]:
        t.add_row(
            f["severity"],
            f["code"],
            f["party"],
            f["provision"],
            f["due"] or "",
            ", ".join(f["subjects"]),
            f["message"],
        )
    # Piped into a file or another program, don't squeeze the table into 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(t)
    pending = sum(1 for o in doc["obligations"] if o["status"] == "pending")
    console.print(
        _("%(n)s obligations, %(pending)s pending") % {"n": len(doc["obligations"]), "pending": pending}
    )


def main(*, in_process: bool = False) -> None:
    """Entry point: run the app; map the error tree to exit codes. ``in_process``: called
    by a program that goes on afterwards (a test), so never end the process early."""
    global _FAST_EXIT
    _FAST_EXIT = not in_process
    try:
        app()
    except CbmnetError as e:
        typer.echo(_("error: %(diagnostics)s") % {"diagnostics": e.diagnostics()}, err=True)
        sys.exit(e.exit_code)
    except UnicodeDecodeError as e:
        typer.echo(
            _("error: input is not valid UTF-8 (%(reason)s at byte %(byte)s)")
            % {"reason": e.reason, "byte": e.start},
            err=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
