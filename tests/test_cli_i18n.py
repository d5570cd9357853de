"""The CLI in the six UN languages: which language a run writes in (``--lang``,
``CBMNET_LANG``, then the POSIX locale), and the root ``--lang`` option."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cbmnet.cli.lang import cli_language
from cbmnet.i18n import catalog

ROOT_HELP = "cbmnet: signed, logged confidence-building measures."
"""The root app's help text, the msgid in ``cli/main.py``."""


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["--lang", "fr", "check"], {"CBMNET_LANG": "ru", "LANG": "es_ES.UTF-8"}, "fr"),
        (["--lang=zh", "check"], {"CBMNET_LANG": "ru"}, "zh"),
        (["--lang", "xx"], {"CBMNET_LANG": "ru"}, "en"),  # asked for, unknown: English
        (["check", "--", "--lang", "fr"], {}, "en"),  # after --: an argument, not the option
        ([], {"CBMNET_LANG": "ar", "LC_ALL": "fr_FR.UTF-8"}, "ar"),
        ([], {"CBMNET_LANG": "xx", "LANG": "fr_FR.UTF-8"}, "en"),
        ([], {"LANGUAGE": "de:es:fr", "LC_ALL": "ru_RU.UTF-8"}, "es"),
        ([], {"LANGUAGE": "de:it", "LC_ALL": "ru_RU.UTF-8"}, "ru"),  # none of ours: next variable
        ([], {"LC_ALL": "zh_CN.UTF-8", "LANG": "fr_FR.UTF-8"}, "zh"),
        ([], {"LC_MESSAGES": "ar_EG.UTF-8", "LANG": "fr_FR.UTF-8"}, "ar"),
        ([], {"LANG": "fr_FR.UTF-8"}, "fr"),
        ([], {"LANG": "es-MX"}, "es"),
        ([], {"LANG": "C"}, "en"),
        ([], {"LC_ALL": "POSIX", "LANG": "fr_FR.UTF-8"}, "en"),
        ([], {"LANG": "de_DE.UTF-8"}, "en"),
        ([], {}, "en"),
    ],
)
def test_the_language_is_the_option_else_cbmnet_lang_else_the_locale(
    argv: list[str], environ: dict[str, str], expected: str
) -> None:
    assert cli_language(argv, environ) == expected


def _cbmnet(*args: str, lang: str = "en") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    env.update(CBMNET_LANG=lang, LANG="C.UTF-8", COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "cbmnet.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_root_help_is_in_english_with_cbmnet_lang_en() -> None:
    run = _cbmnet("--help")
    assert run.returncode == 0, run.stderr
    assert ROOT_HELP in run.stdout
    assert "--lang" in run.stdout
    assert "Compute obligations and findings; exit 0 none, 1 findings, 2 bad input." in run.stdout


def test_an_unknown_language_is_refused_naming_it() -> None:
    run = _cbmnet("--lang", "xx", "agreements", "list")
    assert run.returncode == 2
    assert "xx" in run.stderr and "--lang" in run.stderr
    alone = _cbmnet("--lang", "xx")
    assert alone.returncode == 2
    assert "xx" in alone.stderr


def test_a_known_language_keeps_the_commands_working() -> None:
    run = _cbmnet("--lang", "en", "agreements", "list")
    assert run.returncode == 0, run.stderr
    assert "measures" in run.stdout


def test_the_root_help_is_in_french_with_lang_fr() -> None:
    """The French root help and Typer's own panel titles reach ``--help``; the language
    on the command line wins over the environment's."""
    french = catalog("fr").gettext(ROOT_HELP)
    assert french != ROOT_HELP, "no French translation of the root help text"
    run = _cbmnet("--lang", "fr", "--help", lang="en")
    assert run.returncode == 0, run.stderr
    assert french in run.stdout
    assert "Commandes" in run.stdout and "Commands" not in run.stdout


def test_an_error_frame_is_in_the_users_language_and_the_diagnostic_as_the_hub_says_it() -> None:
    run = _cbmnet("check", "--agreement", "nope", "--events", os.devnull, lang="ru")
    assert run.returncode == 2
    assert run.stderr.startswith(catalog("ru").gettext("error: %(diagnostics)s").split("%")[0])
    assert "unknown agreement 'nope'" in run.stderr  # the core's words, as the hub's API
