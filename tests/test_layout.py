"""The shape of the code: no import cycles, modules of a readable size, and a README that
describes the tree and the op table as they are."""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from adcli.ops import OPS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "adcli"
README = (ROOT / "README.md").read_text(encoding="utf-8")

#: Modules allowed over the size limit, each with the reason it still is (none today).
OVERSIZE: dict[str, str] = {}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _under_type_checking(tree: ast.Module) -> set[int]:
    """ids of import nodes inside ``if TYPE_CHECKING:`` (hints only, never executed)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """adcli modules that ``name`` imports anywhere (top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _under_type_checking(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def test_no_import_cycle_among_adcli_modules() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # The package __init__ runs before any submodule; an edge to it is not a cycle risk.
    graph = {k: {d for d in deps if d != "adcli"} for k, deps in graph.items()}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None
    assert "adcli.syntax" not in graph["adcli.ops"] and "adcli.ops" in graph["adcli.syntax"]


def test_no_module_over_the_size_limit() -> None:
    big = {}
    for path in _modules().values():
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and rel not in OVERSIZE:
            big[rel] = lines
    assert big == {}


def _layout_rows() -> list[str]:
    section = README.split("## How it works", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def test_readme_layout_table_matches_the_tree() -> None:
    rows = _layout_rows()
    assert len(rows) == len(set(rows)), "a module listed twice"
    tree = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")}
    tree.add("grammars/expr.lark")
    assert set(rows) == tree


def test_readme_how_to_add_a_primitive_shows_the_real_entry() -> None:
    section = README.split("### How to add a primitive", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    source = (PACKAGE / "ops.py").read_text(encoding="utf-8")
    flat = lambda text: re.sub(r"\s+", " ", text).strip()
    assert flat(snippet) in flat(source)


def test_readme_conventions_table_names_every_kink() -> None:
    section = README.split("## Conventions at non-differentiable points", 1)[1]
    section = section.split("\n## ", 1)[0]
    for op in OPS.values():
        if op.kink is not None:
            assert f"`{op.name}(" in section, op.name


def test_every_package_is_installed() -> None:
    """pyproject.toml lists packages by hand: a new subpackage missing there would work in a
    source checkout and be absent from a wheel."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
