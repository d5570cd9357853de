"""The house's shape (issue 14): no module imports another's private name, the import graph
of cbmnet's modules has no circle, and ``GET /`` leads to the dashboard.

The graph is read with ``ast`` from the source, not by importing it. An import inside a
function counts too: deferring an import to call time hides a circle from the interpreter,
not from the reader (the dashboard's modules did that before). One under ``if
TYPE_CHECKING`` never runs and does not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import httpx

from cbmnet.hub.app import LANDING
from tests.hubkit import running_hub

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = SRC / "cbmnet"


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = modules()


def absolute(name: str, node: ast.ImportFrom) -> str:
    """The module a ``from`` import reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports(node: ast.AST, late: bool = True) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports under ``node``: with ``late``, those inside functions too (run at call
    time); never those under ``if TYPE_CHECKING``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and ast.unparse(child.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for other in child.orelse:
                yield from imports(other, late)
        elif late or not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from imports(child, late)


def trees() -> Iterator[tuple[str, ast.Module]]:
    for name, path in MODULES.items():
        yield name, ast.parse(path.read_text(), str(path))


def private_imports() -> list[str]:
    """``from cbmnet.x import _y`` anywhere (module level or not), ``_y`` not a module."""
    out = []
    for name, tree in trees():
        for node in imports(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = absolute(name, node)
            if source != "cbmnet" and not source.startswith("cbmnet."):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{source}.{alias.name}" not in MODULES:
                    out.append(f"{name}: from {source} import {alias.name}")
    return out


def private_attributes() -> list[str]:
    """``m._y`` where ``m`` names a cbmnet module (``from cbmnet.x import m``, ``import ... as m``):
    the same private name, reached through the module instead of imported."""
    out = []
    for name, tree in trees():
        bound: dict[str, str] = {}
        for node in imports(tree):
            if isinstance(node, ast.ImportFrom):
                source = absolute(name, node)
                for alias in node.names:
                    if f"{source}.{alias.name}" in MODULES:
                        bound[alias.asname or alias.name] = f"{source}.{alias.name}"
            else:
                bound |= {a.asname: a.name for a in node.names if a.asname and a.name in MODULES}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                out.append(f"{name}: {bound[node.value.id]}.{node.attr}")
    return sorted(set(out))


def graph(late: bool = True) -> dict[str, set[str]]:
    """Module -> the cbmnet modules it imports (with ``late``, inside functions too)."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, tree in trees():
        for node in imports(tree, late):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = absolute(name, node)
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                    for alias in node.names
                ]
            edges[name] |= {t for t in targets if t in MODULES and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_a_private_name_of_another() -> None:
    assert private_imports() == []


def test_no_module_reads_a_private_name_through_another() -> None:
    """``module._name`` counts as much as ``from module import _name``."""
    assert private_attributes() == []


def test_the_import_graph_has_no_circle() -> None:
    assert cycles(graph(late=False)) == []  # the interpreter's view: module level
    assert cycles(graph()) == []  # the reader's: no circle deferred to call time either


def test_the_checks_see_what_they_look_for() -> None:
    """The two checks above would catch what they are for (so an empty answer means something)."""
    assert "cbmnet.hub.web.dashboard" in graph(late=False)["cbmnet.hub.app"]
    late = ast.parse("def f():\n    import cbmnet.hub.app\n")
    assert [type(n) for n in imports(late)] == [ast.Import] and not list(imports(late, late=False))
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("from cbmnet.hub.deps import _hidden\n")
    node = tree.body[0]
    assert isinstance(node, ast.ImportFrom) and absolute("cbmnet.hub.app", node) == "cbmnet.hub.deps"


def state_reads(tree: ast.AST) -> list[str]:
    """Attribute reads of the hub's fold or its lock (``x.state``, ``x._state_lock``,
    ``x.committed``) where ``x`` is a name ``hub`` or ``th.hub``-like chain ending in hub."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("state", "_state_lock", "committed"):
            base = node.value
            name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
            if name == "hub":
                out.append(f"line {node.lineno}: hub.{node.attr}")
    return out


def test_routes_and_pages_read_through_the_read_model() -> None:
    """No route, page or shared dependency reaches into the hub's fold or its lock: they
    read through ``hub.views`` (``hub/views.py``), which owns the caches and the cut."""
    edge = [*ROOT.joinpath("hub", "api").glob("*.py"), *ROOT.joinpath("hub", "web").glob("*.py")]
    edge += [ROOT / "hub" / "deps.py", ROOT / "hub" / "app.py"]
    found = {
        str(p.relative_to(ROOT)): got
        for p in edge
        if (got := state_reads(ast.parse(p.read_text(), str(p))))
    }
    assert found == {}
    # The check sees what it looks for.
    assert state_reads(ast.parse("with hub._state_lock:\n    x = hub.state.parties\n"))


def test_root_leads_to_the_dashboard(tmp_path: Path) -> None:
    """The URL the demo prints (the hub's root) opens the dashboard: its sign-in page until
    signed in. Not a route (the route table lists what answers with the hub's data)."""
    with (
        running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path) as th,
        httpx.Client(base_url=th.url) as http,
    ):
        for method in ("GET", "HEAD"):
            got = http.request(method, "/")
            assert got.status_code == 307 and got.headers["location"] == LANDING == "/dashboard"
        landing = http.get("/", follow_redirects=True)
        assert landing.status_code == 401 and landing.url.path == "/dashboard"
        assert "sign" in landing.text.lower()
        assert http.post("/").status_code == 404  # only a visit is sent on
