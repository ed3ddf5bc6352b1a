"""The house rules of the layout (docs/architecture.md), checked on the source: packages
depend only on packages below them, no module import circle (function-level imports
included), the database knows no workloads, and every package ships in the wheel."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "vtatune"

#: bottom to top; a package may import only those before it (and itself)
LAYERS = ["errors", "_version", "_hw", "hardware", "sim", "board", "workloads", "space", "compiler", "db",
          "task", "measure", "tuning", "validity", "autotune", "study", "backends", "network", "cli",
          "__main__"]


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: pathlib.Path) -> set[str]:
    """Every vtatune module ``path`` imports, at any depth of its code."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("vtatune"):
                # "from . import x" / "from .pkg import mod": the names may be modules
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    out.add(sub if _exists(sub) else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("vtatune"))
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _exists(module: str) -> bool:
    p = ROOT.joinpath(*module.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PKG.rglob("*.py")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    assert {_layer(m) for m in _graph()} - {""} <= set(LAYERS)


def test_packages_import_only_packages_below_them():
    bad = []
    for mod, targets in _graph().items():
        if _layer(mod) == "":
            continue
        here = LAYERS.index(_layer(mod))
        for t in targets:
            if _layer(t) in LAYERS and LAYERS.index(_layer(t)) > here:
                bad.append(f"{mod} -> {t}")
    assert bad == []


def test_the_database_knows_no_workloads():
    for mod, targets in _graph().items():
        if _layer(mod) == "db":
            assert not {_layer(t) for t in targets} & {"workloads", "space", "compiler", "task"}, mod


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles of ``graph`` (each as a path back to its start), re-exports through a
    package's own ``__init__`` left out."""
    edges = {m: {t for t in ts if t in graph and t != m.rsplit(".", 1)[0]}
             for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    return [c for c in cycles if not _through_init_only(c)]


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_import_circle():
    graph = _graph()
    assert "vtatune.hardware.isa" in graph["vtatune.hardware.disasm"]  # the reader sees imports
    assert _cycles(graph) == []


def test_hardware_config_does_not_need_the_codec():
    assert "vtatune.hardware.isa" not in _graph()["vtatune.hardware.config"]


def _through_init_only(cycle: list[str]) -> bool:
    """A cycle package -> module -> package.__init__ (re-export) is not a design circle."""
    return any(b.startswith(a + ".") for a, b in zip(cycle, cycle[1:]))


def test_every_package_ships_in_the_wheel():
    listed = set(re.findall(r'"(vtatune(?:\.[a-z_]+)*)"',
                            (ROOT / "pyproject.toml").read_text().split("[tool.setuptools]")[1]
                            .split("[tool.setuptools.package-dir]")[0]))
    found = {_module_name(p.parent) for p in PKG.rglob("__init__.py")}
    assert found - listed == set()
