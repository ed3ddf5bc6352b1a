"""The hardware package is the bottom layer: no import circle inside it, nothing above it
imported (issue 10).  Imports are read from the source, function-level ones included."""
from __future__ import annotations

import ast
import pathlib

import vtatune

ROOT = pathlib.Path(vtatune.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = pathlib.Path(*name.split("."))
    base = ROOT.parent / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: pathlib.Path) -> set[str]:
    """vtatune modules that ``path`` imports anywhere in its body."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("vtatune"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("vtatune"):
                continue
            for alias in node.names:  # "from . import isa" imports a module
                sub = f"{target}.{alias.name}"
                out.add(sub if _is_module(sub) else target)
    return out


def graph(package: str) -> dict[str, set[str]]:
    folder = ROOT.parent / pathlib.Path(*package.split("."))
    return {_module_name(p): imports_of(p) for p in sorted(folder.glob("*.py"))}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str):
        state[m] = 1
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if n not in g or n == m:
                continue
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_hardware_package_has_no_import_circle():
    g = graph("vtatune.hardware")
    assert "vtatune.hardware.isa" in g["vtatune.hardware.disasm"]  # the reader sees imports
    assert find_cycle(g) is None


def test_hardware_imports_nothing_above_it():
    for module, deps in graph("vtatune.hardware").items():
        above = {d for d in deps if not d.startswith("vtatune.hardware") and d != "vtatune.errors"}
        assert not above, f"{module} imports {above}"


def test_config_does_not_need_the_codec():
    deps = graph("vtatune.hardware")["vtatune.hardware.config"]
    assert "vtatune.hardware.isa" not in deps


def test_simulator_modules_have_no_import_circle():
    assert find_cycle(graph("vtatune.sim")) is None
