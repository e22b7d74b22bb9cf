"""The LALR tables of the fast driver, built from Lark's parser.

They ship with the package (:mod:`adcli.language.lalr_data`, written by ``python -m
adcli.language.lalr_tables``; a test checks it against Lark) and are used whenever the grammar
file is the one they were built from: a Python module is bytecode-cached and loads faster than
any file read and checked at run time. When the grammar differs (say, edited in a checkout),
they are built from Lark and cached as checked JSON in the user's own cache directory (never a
shared temp dir, never pickle); a file is used only if it is a regular file of ours, small, of
the right format, grammar, Lark version and digest, and parses the canary program to its known
shape.  Anything else is rebuilt.
"""

from __future__ import annotations

import os
import stat
import sys

from ..core.syntax import Statement
from . import grammar_file, once
from .lalr import _fast_parse, _prepare, _specialise
from .scan import _TERMINAL_PATTERNS

#: The table cache's own format; bump it when the layout of the JSON changes.
_CACHE_FORMAT = 2
#: A cache file larger than this is not ours (the tables are about 15 KB).
_CACHE_MAX_BYTES = 1 << 20
#: Parsed through freshly loaded tables and compared with its known shape, so tables that
#: were altered (say add and sub swapped) are rebuilt, whatever digest they carry.
_CANARY = "a = x + y - z\nb = +a * w / v ^ -u ** 2; max(b, sin(.5e1)) # c"
_CANARY_SHAPE = ["a (sub (add x y) z)", "b (div (mul a w) (pow v (neg (pow u 2.0))))",
                 "(max b (sin 5.0))"]


def _digest(data: bytes) -> str:
    """A content digest of the cache (blake2b from its C module: importing hashlib costs more
    than the whole digest)."""
    try:
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover - another Python implementation
        from hashlib import blake2b
    return blake2b(data, digest_size=20).hexdigest()


def _cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/adcli`` (or ``~/.cache/adcli``), created 0700, or None when it is not
    safely ours: a symlink, not a directory, or owned by someone else. Never a shared temp dir."""
    if os.environ.get("ADCLI_NO_GRAMMAR_CACHE", "").strip().lower() in ("1", "true", "yes"):
        return None  # the one rule (README): 1, true or yes turn it off; 0, no, ... do not
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None  # XDG says relative paths are invalid; never cache in the working dir
    path = os.path.join(base, "adcli")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return None
        if st.st_mode & 0o077:  # made by an older adcli with the default umask
            os.chmod(path, 0o700)
    except (OSError, AttributeError):  # AttributeError: no os.getuid (Windows)
        return None
    return path


def _lark_version() -> str:
    """Lark's version without importing Lark (a run that finds its tables never needs it):
    read from its ``__init__.py``, found on ``sys.path`` as the import system would find a
    plain package (``importlib.util.find_spec`` costs more to import than the tables to load)."""
    import re

    for entry in sys.path:
        origin = os.path.join(entry or os.curdir, "lark", "__init__.py")
        try:
            with open(origin, encoding="utf-8") as fh:
                m = re.search(r"""^__version__\s*(?::\s*str\s*)?=\s*["']([^"']+)["']""",
                              fh.read(65536), re.M)
        except (OSError, ValueError):
            continue
        return m.group(1) if m else ""
    return ""


def _read_cache(path: str) -> bytes | None:
    """The file's bytes if it is a regular file of ours (never through a symlink), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() \
                or st.st_size > _CACHE_MAX_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(_CACHE_MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _write_cache(directory: str, name: str, payload: bytes) -> None:
    """Atomically: a private temp file in the same directory, then ``os.replace``."""
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                     | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, os.path.join(directory, name))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _unpack_cache(raw: bytes | None, key: str, lark_version: str) -> dict | None:
    """The tables from a cache file, or None if anything does not match (then they are
    rebuilt): format, grammar key, Lark version and the digest of the tables."""
    if raw is None:
        return None
    import json

    try:
        doc = json.loads(raw)
        tables = doc["tables"]
        ok = (doc["format"] == _CACHE_FORMAT and doc["grammar"] == key
              and lark_version and doc["lark"] == lark_version == tables["lark"]
              and doc["digest"] == _digest(json.dumps(tables, sort_keys=True).encode()))
    except (ValueError, KeyError, TypeError):
        return None
    return tables if ok else None


def _check_tables(data: dict) -> None:
    """Raise ValueError unless cached tables are shaped as an LR automaton the driver can run
    to the end on any text: every entry of the right type and in range, every state entered
    by one symbol, every reduction of 1..8 symbols matching the symbols that enter the states
    below it (so the stacks never run short and every goto exists), and no cycle of one-symbol
    rules (so reductions always end). Tables built from Lark pass; the canary cannot catch a
    damaged row it never reaches."""
    states, rules = data["states"], data["rules"]
    if not (isinstance(states, list) and isinstance(rules, list) and 0 < len(states) < 1024
            and 0 < len(rules) < 1024):
        raise ValueError("tables")
    for rule in rules:
        if not (isinstance(rule, list) and len(rule) == 4 and isinstance(rule[0], str)
                and isinstance(rule[1], list) and 1 <= len(rule[1]) <= 8
                and all(isinstance(x, str) for x in rule[1])
                and (rule[2] is None or isinstance(rule[2], str))
                and isinstance(rule[3], bool)):
            raise ValueError("rule")
    entered_by: dict[int, str] = {}
    below: dict[int, list[int]] = {}
    lowest, count = -len(rules), len(states)
    for p, row in enumerate(states):
        if type(row) is not dict:
            raise ValueError("state")
        for sym, action in row.items():
            if type(action) is not int or not lowest <= action < count or type(sym) is not str:
                raise ValueError("action")
            if action >= 0:
                if entered_by.setdefault(action, sym) != sym:
                    raise ValueError("a state entered by two symbols")
                below.setdefault(action, []).append(p)
    for key in ("start", "end"):
        if type(data[key]) is not int or not 0 <= data[key] < len(states):
            raise ValueError(key)
    reductions = {(s, -1 - a) for s, row in enumerate(states) for a in row.values() if a < 0}
    for s, r in reductions:
        origin, expansion = rules[r][0], rules[r][1]
        frontier = {s}
        for sym in reversed(expansion):
            if any(entered_by.get(q) != sym for q in frontier):
                raise ValueError("a reduction that does not match the stack")
            frontier = {p for q in frontier for p in below.get(q, ())}
            if not frontier:
                raise ValueError("a reduction longer than the stack")
        if any(states[p].get(origin, -1) < 0 for p in frontier):
            raise ValueError("a reduction with no goto")
    # one-symbol rules (origin <- symbol) must form no cycle
    unit: dict[str, set[str]] = {}
    for origin, expansion, _alias, _expand1 in rules:
        if len(expansion) == 1:
            unit.setdefault(expansion[0], set()).add(origin)
    done: set[str] = set()
    for root in unit:
        path: set[str] = set()
        stack = [(root, iter(unit.get(root, ())))]
        path.add(root)
        while stack:
            sym, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.discard(sym)
                done.add(sym)
            elif child in path:
                raise ValueError("a cycle of one-symbol rules")
            elif child not in done:
                path.add(child)
                stack.append((child, iter(unit.get(child, ()))))


def _shape(statements: list[Statement]) -> list[str]:
    """Statements as s-expressions, iteratively (used on the fixed canary only)."""
    out = []
    for st in statements:
        parts: list[str] = [st.name + " "] if st.name else []
        stack: list = [st.expr]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                parts.append(item)
            elif item.op == "const":
                parts.append(repr(item.value))
            elif item.op == "var":
                parts.append(item.name)
            else:
                parts.append("(" + item.op)
                stack.append(")")
                for arg in reversed(item.args):
                    stack.extend((arg, " "))
        out.append("".join(parts))
    return out


def _build_tables() -> dict:
    import lark

    from .grammar import _parser

    p = _parser()
    patterns = {t.name: t.pattern.value for t in p.terminals}
    for name, pattern in _TERMINAL_PATTERNS.items():
        if patterns.get(name) != pattern:
            raise RuntimeError(f"terminal {name} changed in the grammar; update the fast lexer")
    table = p.parser.parser.parser.parse_table
    rules = []
    rule_index: dict[int, int] = {}
    for state in table.states.values():
        for _tok, (action, arg) in state.items():
            if action.name == "Reduce" and id(arg) not in rule_index:
                rule_index[id(arg)] = len(rules)
                rules.append([arg.origin.name, [s.name for s in arg.expansion], arg.alias,
                              bool(arg.options.expand1)])
    states = []
    for i in range(len(table.states)):
        row = {}
        for tok, (action, arg) in table.states[i].items():
            row[tok] = arg if action.name == "Shift" else -1 - rule_index[id(arg)]
        states.append(row)
    return {"lark": lark.__version__, "start": table.start_states["start"],
            "end": table.end_states["start"], "states": states, "rules": rules}


#: Whether the tables in use came from the cache or the package, and whether neither is to be
#: used any more (see :func:`rebuild_tables`).
_CACHE_STATE = {"used": False, "shipped": False, "distrusted": False}


def tables_source() -> str:
    """Where the tables the driver runs came from: "package", "cache" or "lark" (built now)."""
    if _CACHE_STATE["shipped"]:
        return "package"
    return "cache" if _CACHE_STATE["used"] else "lark"


def _shipped_tables(grammar: bytes) -> dict | None:
    """The tables of :mod:`adcli.language.lalr_data` if they were built from ``grammar`` (the
    grammar file's bytes), else None. ``ADCLI_SHIPPED_TABLES=0`` leaves them unused, so that
    the tests can run the cache."""
    if _CACHE_STATE["distrusted"] or os.environ.get("ADCLI_SHIPPED_TABLES", "").strip() == "0":
        return None
    from . import lalr_data

    return lalr_data.TABLES if lalr_data.GRAMMAR == grammar else None


def _wrapped(items: list[str], indent: str, width: int = 96) -> list[str]:
    """``items`` joined by ", " into lines of at most ``width`` characters (for ruff)."""
    lines, line = [], indent
    for item in items:
        if len(line) + len(item) + 2 > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += item + ", "
    return lines + [line.rstrip()]


def canonical_tables(tables: dict) -> dict:
    """``tables`` numbered in a fixed order, so that two builds of one grammar compare equal:
    Lark numbers its states and rules differently from run to run (it walks sets). Rules are
    sorted; states are numbered in the breadth-first order from the start state, symbols
    taken in sorted order; every row is sorted by symbol."""
    rules = sorted(tables["rules"], key=repr)
    rule_number = {repr(rule): i for i, rule in enumerate(rules)}
    old_rules = tables["rules"]
    states = tables["states"]
    number = {tables["start"]: 0}
    order = [tables["start"]]
    for old in order:  # grows as it goes: breadth first
        for sym in sorted(states[old]):
            action = states[old][sym]
            if action >= 0 and action not in number:
                number[action] = len(order)
                order.append(action)
    if len(order) != len(states):
        raise ValueError("a state that cannot be reached from the start")

    def action(a: int) -> int:
        return number[a] if a >= 0 else -1 - rule_number[repr(old_rules[-1 - a])]

    return {"lark": tables["lark"], "start": 0, "end": number[tables["end"]],
            "states": [{sym: action(states[old][sym]) for sym in sorted(states[old])}
                       for old in order],
            "rules": rules}


def write_shipped_tables(path: str | None = None) -> str:
    """Build the tables from Lark and write them, with the grammar they come from, as the
    module :mod:`adcli.language.lalr_data` (or to ``path``); returns the path written."""
    import json

    with open(grammar_file(), "rb") as fh:
        grammar = fh.read()
    # Lark's tokens as plain strings, in a fixed order (the file changes only with the grammar)
    tables = canonical_tables(json.loads(json.dumps(_build_tables())))
    _check_tables(tables)
    if not _canary_passes(_prepare(tables)):
        raise RuntimeError("the fast parser disagrees with the grammar on the canary program")
    lines = ['"""The LALR tables of grammars/expr.lark, built by Lark: generated by ``python -m',
             'adcli.language.lalr_tables`` (do not edit; tests/test_function_cold.py checks it',
             'against Lark). Used only while the grammar file is byte for byte ``GRAMMAR``."""',
             "", "GRAMMAR = ("]
    lines += [f"    {grammar[i:i + 64]!r}" for i in range(0, len(grammar), 64)]
    lines += [")", "", "TABLES = {", f"    'lark': {tables['lark']!r},",
              f"    'start': {tables['start']!r},", f"    'end': {tables['end']!r},",
              "    'states': ["]
    for row in tables["states"]:
        lines += ["        {"] + _wrapped([f"{k!r}: {v!r}" for k, v in row.items()],
                                          " " * 12) + ["        },"]
    lines += ["    ],", "    'rules': ["]
    lines += _wrapped([repr(rule) for rule in tables["rules"]], " " * 8)
    lines += ["    ],", "}", ""]
    if path is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lalr_data.py")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    return path


def rebuild_tables() -> None:
    """Forget the tables read from the cache (or the package) and build them from Lark
    (rewriting the cache): what the parser does when such tables fail in a way Lark's own
    never do."""
    _CACHE_STATE["distrusted"] = True
    _tables.cache_clear()
    _fast_reducers.cache_clear()


@once
def _tables() -> tuple:
    """The LALR tables: the package's, the validated JSON cache's or freshly built from Lark."""
    with open(grammar_file(), "rb") as fh:
        text = fh.read()
    shipped = _shipped_tables(text)
    _CACHE_STATE["shipped"] = shipped is not None
    if shipped is not None:
        _CACHE_STATE["used"] = False
        return _prepare(shipped)
    key = _digest(text + b"adcli-fast-2")
    name = f"lalr-{key[:16]}.json"
    directory = _cache_dir()
    _CACHE_STATE["used"] = False
    if directory is not None and not _CACHE_STATE["distrusted"]:
        version = _lark_version()
        try:
            tables = _unpack_cache(_read_cache(os.path.join(directory, name)), key, version)
            if tables is not None:
                _check_tables(tables)
                prepared = _prepare(tables)
                if _canary_passes(prepared):
                    _CACHE_STATE["used"] = True
                    return prepared
        except Exception:  # noqa: BLE001 - any unreadable or inconsistent cache is rebuilt
            pass  # (JSON nested too deeply, tables with a valid digest but wrong inside)
    tables = _build_tables()
    prepared = _prepare(tables)
    if not _canary_passes(prepared):
        raise RuntimeError("the fast parser disagrees with the grammar on the canary program")
    if directory is not None:
        import json

        body = json.dumps(tables, sort_keys=True)
        doc = {"format": _CACHE_FORMAT, "grammar": key, "lark": tables["lark"],
               "digest": _digest(body.encode()), "tables": tables}
        _write_cache(directory, name, json.dumps(doc).encode())
    return prepared


#: The driver's form of the tables the canary last passed, as (prepared, specialised): the
#: first parse reuses it instead of specialising the same tables a second time.
_CHECKED: list[tuple] = []


def _canary_passes(prepared: tuple) -> bool:
    """Whether the canary program parses to its known shape through ``prepared``."""
    specialised = _specialise(prepared)
    if _shape(_fast_parse(_CANARY, specialised)) != _CANARY_SHAPE:
        return False
    _CHECKED[:] = [(prepared, specialised)]
    return True


@once
def _fast_reducers() -> tuple:
    prepared = _tables()
    if _CHECKED and _CHECKED[0][0] is prepared:
        return _CHECKED[0][1]
    return _specialise(prepared)


if __name__ == "__main__":
    print(write_shipped_tables())
