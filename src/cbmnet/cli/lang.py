"""The CLI's language, chosen once per process before its help texts are built.

Precedence: ``--lang CODE`` on the command line, then ``CBMNET_LANG``, then the POSIX
locale variables in gettext's order (``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``).
The first that names one of the six languages decides; ``C``/``POSIX`` or none is
English. Help texts are strings built when the command is defined, so the choice is
made when ``cbmnet.cli`` is imported, not when an option is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cbmnet.i18n import CURRENT, DEFAULT, LANGUAGES, N_, gettext, ngettext

POSIX_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def language_code(value: str) -> str | None:
    """``fr_FR.UTF-8`` -> ``fr``; ``C``, ``POSIX`` or a language we lack -> None."""
    tag = value.strip().split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    return tag if tag in LANGUAGES else None


def _from_argv(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv[:64]):
        if arg == "--":
            return None
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.removeprefix("--lang=")
    return None


def cli_language(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """The language this invocation writes in."""
    asked = _from_argv(argv)
    if asked is not None:
        return language_code(asked) or DEFAULT
    if environ.get("CBMNET_LANG"):
        return language_code(environ["CBMNET_LANG"]) or DEFAULT
    for name in POSIX_VARIABLES:
        value = environ.get(name, "")
        if not value:
            continue
        if name == "LANGUAGE":  # a priority list: the first of ours wins
            for item in value.split(":"):
                if language_code(item):
                    return str(language_code(item))
            continue
        return language_code(value) or DEFAULT
    return DEFAULT


FRAME_WORDS = (
    N_("Options"),
    N_("Commands"),
    N_("Arguments"),
    N_("Error"),
)
"""Typer's panel titles: theirs, not ours (its '--help' line is fixed English)."""


def use(lang: str) -> None:
    """Write in ``lang`` from now on, in this process."""
    CURRENT.set(lang if lang in LANGUAGES else DEFAULT)
    if CURRENT.get() == DEFAULT:
        return
    # Typer reads its panel titles through the stdlib's gettext domain, which holds no
    # catalogue of ours: give it ours, so a help page is in one language. Imported only
    # here: English needs none of it, and rich's help renderer costs every start 0.1 s.
    import typer.rich_utils as rich

    rich.OPTIONS_PANEL_TITLE = gettext("Options")
    rich.COMMANDS_PANEL_TITLE = gettext("Commands")
    rich.ARGUMENTS_PANEL_TITLE = gettext("Arguments")
    rich.ERRORS_PANEL_TITLE = gettext("Error")


def findings_title(agreement: object, as_of: object, n: int) -> str:
    """The title of a findings table (``check`` and ``reconcile``), in the CLI's language."""
    return ngettext(
        "%(agreement)s as of %(as_of)s: %(n)s finding",
        "%(agreement)s as of %(as_of)s: %(n)s findings",
        n,
    ) % {"agreement": agreement, "as_of": as_of, "n": n}
