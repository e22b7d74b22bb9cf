"""The shape of the code: packages by layer with every import going down, no import cycles,
modules of a readable size, and a README that describes the tree and the op table as they are."""

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


def _imported_module(node: ast.ImportFrom, package: str) -> str:
    """The absolute module a ``from ... import`` reads, relative levels resolved."""
    base = node.module or ""
    if node.level:
        anchor = package.split(".")
        anchor = anchor[:len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return base


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
            base = _imported_module(node, package)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def test_no_import_cycle_among_adcli_modules() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # A package's __init__ runs before any of its submodules; an edge from a module to a
    # package that contains it is not a cycle risk.
    graph = {k: {d for d in deps if not k.startswith(d + ".")} for k, deps in graph.items()}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None
    assert "adcli.core.syntax" not in graph["adcli.ops"]
    assert "adcli.ops" in graph["adcli.core.syntax"]


#: The package's faces: the only modules directly in adcli/.
FACES = {"__init__", "__main__", "cli", "errors", "results", "function"}

#: Bottom to top. A unit is a package of adcli (``core``) or a face (``function``, and
#: ``__init__`` for the package itself). A module may import from its own unit or from a unit of
#: a strictly lower layer; units of one layer import nothing from each other.
LAYERS = [
    ("errors", "results"),
    ("ops",),
    ("core",),
    ("language", "fast", "derive"),
    ("function",),
    ("io", "modes"),
    ("optimize",),
    ("regression",),
    ("propagation",),
    ("partitioned", "output"),
    ("commands", "__init__"),
    ("cli",),
    ("__main__",),
]
LAYER = {unit: number for number, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: its package under adcli, or the face itself."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _arrows(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, imported module) for every import of ``name``, type-checking ones included (a
    hint that points up is still an arrow up). ``from pkg import x`` imports ``pkg.x`` when that
    is a module, else ``pkg`` itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "adcli"]
        elif isinstance(node, ast.ImportFrom):
            base = _imported_module(node, package)
            if base.split(".")[0] != "adcli":
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                out.append((node.lineno, full if full in modules else base))
    return out


def test_only_the_faces_stay_at_the_top() -> None:
    """``ls adcli/*.py`` lists only the package's faces; everything else lives in a package
    named for its job (the re-layout moved it there)."""
    flat = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in FACES)
    assert flat == [], (f"{len(flat)} modules still sit flat in adcli/ (the package re-layout "
                        f"has not run, or a new module was added there): {', '.join(flat)}")


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    packages.discard("grammars")
    assert packages - set(LAYER) == set(), "a package missing from LAYERS"
    assert set(LAYER) - FACES - packages == set(), "LAYERS names a package that does not exist"


def test_every_import_goes_down_a_layer() -> None:
    """Every import of every module goes to its own package or to a strictly lower layer, so
    the tree is a picture of the architecture: nothing reaches up."""
    modules = _modules()
    unknown = sorted({_unit(m) for m in modules} - set(LAYER))
    assert unknown == [], (f"modules outside every layer (flat modules left, or a new package "
                           f"missing from LAYERS): {', '.join(unknown)}")
    up = []
    for name, path in modules.items():
        here = _unit(name)
        for line, target in _arrows(name, path, modules):
            there = _unit(target)
            if target != name and there != here and LAYER[there] >= LAYER[here]:
                rel = path.relative_to(ROOT).as_posix()
                up.append(f"{rel}:{line} imports {target} ({there}, layer {LAYER[there]}; "
                          f"{here} is layer {LAYER[here]})")
    assert up == [], "imports that do not go down a layer:\n" + "\n".join(up)


def test_the_readme_pictures_the_layers() -> None:
    section = README.split("## How it works", 1)[1].split("\n## ", 1)[0]
    assert "The packages by layer" in section, "README.md pictures no layers (not re-laid out)"
    picture = section.split("The packages by layer", 1)[1].split("```", 2)[1]
    seen = []
    for line in picture.strip("\n").splitlines():
        number, name = line[:2].strip(), line[4:].split(" ", 1)[0]
        if number:
            seen.append([])
        seen[-1].append(name.removesuffix("/").removesuffix(".py"))
    assert [tuple(units) for units in reversed(seen)] == LAYERS


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
    source = (PACKAGE / "ops" / "__init__.py").read_text(encoding="utf-8")
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
