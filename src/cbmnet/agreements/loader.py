"""Reading agreement files (YAML) and the bundled agreements; resolving their zones.

This is an edge: it reads files and border data. Errors name the file and the field
path (``measures[3].lead``) so a lawyer can find the line to correct.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cbmnet.agreements.model import RULE_NAMES, Agreement
from cbmnet.errors import FormatError

MAX_AGREEMENT_BYTES = 4 << 20
MAX_AGREEMENT_VALUES = 1_000_000
"""Values in one parsed agreement; YAML aliases can expand a small file past any size."""


def _where(loc: tuple[Any, ...], doc: Any) -> str:
    """A pydantic error location as a path a person can follow, naming measure ids."""
    parts: list[str] = []
    node = doc
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                mid = node[item].get("id")
                label = f"[{item}] (id {mid!r})" if mid else label
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            # Discriminated-union tags (the rule names) are not keys of the document.
            if isinstance(node, dict) and item not in node and item in RULE_NAMES:
                continue
            parts.append(f".{item}" if parts else str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def parse_agreement(text: str, source: str) -> Agreement:
    """Parse and validate an agreement document (YAML or JSON)."""
    if len(text) > MAX_AGREEMENT_BYTES:
        raise FormatError(f"{source}: larger than {MAX_AGREEMENT_BYTES} bytes")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise FormatError(f"{source}: not valid YAML{line}") from e
    except RecursionError as e:
        raise FormatError(f"{source}: nested too deeply") from e
    try:
        bad = _bad_string(doc, "", [MAX_AGREEMENT_VALUES])
    except RecursionError:  # a YAML alias inside its own anchor: the document holds itself
        raise FormatError(f"{source}: nested too deeply, or an alias refers to itself") from None
    if bad is _TOO_MANY:
        raise FormatError(f"{source}: more than {MAX_AGREEMENT_VALUES} values (aliases expanded)")
    if bad is not None:
        raise FormatError(f"{source}, {bad or '(top level)'}: text is not valid Unicode")
    if not isinstance(doc, dict):
        raise FormatError(f"{source}: an agreement is a mapping with id, title, measures …")
    try:
        return Agreement.model_validate(doc)
    except ValidationError as e:
        err = e.errors()[0]
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise FormatError(f"{source}, {_where(err['loc'], doc)}: {err['msg']}{more}") from None


_TOO_MANY = "\0too many values"


def _bad_string(node: Any, path: str, budget: list[int]) -> str | None:
    """The path of the first string that is not valid Unicode (a lone surrogate), if any.

    ``budget`` counts down the values visited; ``_TOO_MANY`` when it runs out.
    """
    budget[0] -= 1
    if budget[0] < 0:
        return _TOO_MANY
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError:
            return path
    elif isinstance(node, dict):
        for k, v in node.items():
            found = _bad_string(v, f"{path}.{k}" if path else str(k), budget)
            if found is not None:
                return found
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found = _bad_string(v, f"{path}[{i}]", budget)
            if found is not None:
                return found
    return None


def load_agreement_file(path: str | Path) -> Agreement:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"{p}: cannot read ({e})") from e
    return parse_agreement(text, str(p))


def _bundled_dir() -> Any:
    return resources.files("cbmnet.agreements") / "bundled"


def bundled_ids() -> list[str]:
    return sorted(
        f.name.removesuffix(".yaml") for f in _bundled_dir().iterdir() if f.name.endswith(".yaml")
    )


@lru_cache(maxsize=64)
def bundled(agreement_id: str) -> Agreement:
    f = _bundled_dir() / f"{agreement_id}.yaml"
    if not f.is_file():
        raise FormatError(f"unknown agreement {agreement_id!r}; bundled: {', '.join(bundled_ids())}")
    return parse_agreement(f.read_text(encoding="utf-8"), f"bundled {agreement_id}.yaml")


def load_agreement(ref: str) -> Agreement:
    """A bundled id, or a path to an agreement file."""
    if ref.endswith((".yaml", ".yml", ".json")) or "/" in ref:
        return load_agreement_file(ref)
    return bundled(ref)


def resolve_zones(agreement: Agreement) -> dict[str, Any]:
    """Shapely geometries for the agreement's zones (borders from Natural Earth)."""
    from shapely.geometry import shape

    out: dict[str, Any] = {}
    for name, zone in agreement.zones.items():
        if zone.geometry is not None:
            try:
                geom = shape(zone.geometry)
                if not geom.is_valid or geom.is_empty:
                    raise ValueError("not a valid, non-empty geometry")
            except Exception as e:  # shapely raises several kinds for bad GeoJSON
                raise FormatError(f"{agreement.id}, zones.{name}.geometry: {e}") from e
            out[name] = geom
        else:
            from cbmnet.geo import border

            assert zone.border is not None
            out[name] = border(*zone.border)
    return out


def json_schema() -> str:
    return json.dumps(Agreement.model_json_schema(), indent=1, sort_keys=True) + "\n"
