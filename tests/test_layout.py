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


# ----------------------------------------------------------------- a clone is self-contained

def test_every_image_the_readme_references_exists() -> None:
    targets = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", README)
    targets += re.findall(r"<img[^>]*\bsrc=\"([^\"]+)\"", README)
    local = [t for t in targets if "://" not in t]
    assert local, "the README shows no image: this test would prove nothing"
    missing = [t for t in local if not (ROOT / t).is_file()]
    assert missing == []


#: Text that reaches outside the repository from a test: a climb above it, or the sibling
#: ``shared/`` that CI happens to lay beside a clone. Split so this file does not match itself.
_OUTSIDE = re.compile("|".join([r"\.\./", r"parent\.parent\.parent", r"['\"]/work/",
                                "shar" + r"ed[/\"']", r"parents\[[2-9]\]"]))


def test_no_test_names_a_path_outside_the_repository() -> None:
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == Path(__file__).name:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if _OUTSIDE.search(code):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


#: Run inside the child: pytest on the NIST tests with an audit hook that records every file
#: opened or listed outside the repository but beside it (ROOT's parent, where a sibling
#: ``shared/`` would be), or under any directory called ``shared`` outside the repository.
_AUDITED = """
import os, sys, tempfile
root, log = sys.argv[1], sys.argv[2]
allowed = [os.path.realpath(p) + os.sep for p in
           (root, sys.prefix, sys.base_prefix, sys.exec_prefix, tempfile.gettempdir())]
beside = os.path.dirname(root) + os.sep
def hook(event, args):
    if event not in ("open", "os.listdir", "os.scandir") or not args:
        return
    path = args[0]
    if isinstance(path, int) or path is None:
        return
    path = os.path.realpath(os.fsdecode(path))
    if any((path + os.sep).startswith(a) for a in allowed):
        return
    if (path + os.sep).startswith(beside) or os.sep + "shared" + os.sep in path + os.sep:
        with open(log, "a") as fh:
            fh.write(path + "\\n")
sys.addaudithook(hook)
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-k", "Rat43 or Misra1a or data_present",
                      os.path.join(root, "tests", "test_nist.py")]))
"""


def test_the_nist_tests_read_nothing_outside_the_repository(tmp_path) -> None:
    import subprocess
    import sys

    log = tmp_path / "outside.txt"
    done = subprocess.run([sys.executable, "-c", _AUDITED, str(ROOT), str(log)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\b5 passed\b", done.stdout), done.stdout[-2000:]
    assert not log.exists(), log.read_text()
