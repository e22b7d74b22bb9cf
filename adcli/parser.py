"""Text -> :class:`~adcli.syntax.Program`.

Lark's LALR parser is an iterative loop and the transformer below runs inline, as each rule is
reduced, so no parse tree is built and nothing recurses: 50,000 nested parentheses are fine.
Numbers become float64 the moment they are read (``9^9^9^9`` is inf, never a big int).
"""

from __future__ import annotations

import json
import os
import re
import stat
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AdcliError, NameResolutionError, ParseError
from .ops import FUNCTIONS
from .syntax import Node, Program, Statement, call, const, var

if TYPE_CHECKING:
    from lark import Token
    from lark.exceptions import UnexpectedInput

#: Refuse sources larger than this many bytes unless the caller raises the limit.
#: Inputs over this size are refused at once (``--max-size`` changes it). At 2 MiB the
#: densest input, a sum of a million one-letter terms, parses in about 7 s and is lowered
#: and evaluated in about 15 s in all on the 2-core machine.
DEFAULT_MAX_SOURCE_BYTES = 2 * 1024 * 1024

_TOKEN_NAMES = {
    "NUMBER": "a number", "NAME": "a name", "LPAR": "'('", "RPAR": "')'", "PLUS": "'+'",
    "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "POW": "'^'", "COMMA": "','",
    "SEMICOLON": "';'", "EQUAL": "'='", "_NL": "a new line", "$END": "the end of the input",
}


def grammar_path() -> Path:
    """The grammar file: inside the installed package, or grammars/ of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "grammars" / "expr.lark", here.parent / "grammars" / "expr.lark"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("adcli's grammar file expr.lark is missing from the installation")


class _Build:
    """Inline callbacks, one per grammar alias. Raises NameResolutionError for bad calls."""

    def number(self, tok: Token) -> Node:
        return const(float(tok))  # float64 from the start

    def name(self, tok: Token) -> Node:
        return var(str(tok), tok.line, tok.column)

    def add(self, a, b):
        return call("add", a, b)

    def sub(self, a, b):
        return call("sub", a, b)

    def mul(self, a, b):
        return call("mul", a, b)

    def div(self, a, b):
        return call("div", a, b)

    def neg(self, a):
        return call("neg", a)

    def pos(self, a):
        return a

    def pow(self, a, _tok, b):
        return call("pow", a, b)

    def arguments(self, *args):
        return args

    def call(self, tok: Token, args: tuple) -> Node:
        name = str(tok)
        error = _call_error(name, tok.line, tok.column, len(args))
        if error is not None:
            raise error
        return call(FUNCTIONS[name].name, *args, line=tok.line, column=tok.column)

    def call0(self, tok: Token) -> Node:
        return self.call(tok, ())

    def assign(self, tok: Token, expr: Node) -> Statement:
        return Statement(str(tok), expr, tok.line, tok.column)

    def output(self, expr: Node) -> Statement:
        return Statement(None, expr, expr.line, expr.column)

    def start(self, *statements: Statement) -> list[Statement]:
        return list(statements)


def _call_error(name: str, line: int, column: int, nargs: int) -> NameResolutionError | None:
    """The error for a call of an unknown function or with the wrong number of arguments."""
    op = FUNCTIONS.get(name)
    if op is None:
        close = _closest_function(name)
        guess = f"did you mean '{close}'? " if close else ""
        return NameResolutionError(f"unknown function '{name}'", line=line, column=column,
                                   hint=guess + "functions: " + ", ".join(sorted(FUNCTIONS)))
    if nargs != op.arity:
        want = "1 argument" if op.arity == 1 else f"{op.arity} arguments"
        return NameResolutionError(f"{name}() takes {want}, got {nargs}", line=line,
                                   column=column)
    return None


#: Other languages' names for functions adcli has (numpy's, C's, mathematicians').
_FUNCTION_ALIASES = {"ln": "log", "arcsin": "asin", "arccos": "acos", "arctan": "atan",
            "arctan2": "atan2", "arcsinh": "asinh", "power": "pow", "fabs": "abs",
            "maximum": "max", "minimum": "min", "logistic": "sigmoid", "expit": "sigmoid",
            "heaviside": "step", "sgn": "sign", "signum": "sign", "exp1m": "expm1"}


def _closest_function(name: str) -> str | None:
    """The function a user most likely meant by an unknown name (ln -> log, sine -> sin)."""
    import difflib

    alias = _FUNCTION_ALIASES.get(name.lower())
    if alias in FUNCTIONS:
        return alias
    if name.lower() in FUNCTIONS:
        return name.lower()
    found = difflib.get_close_matches(name[:100].lower(), sorted(FUNCTIONS), n=1, cutoff=0.6)
    return found[0] if found else None


@lru_cache(maxsize=1)
def _parser():
    """Lark's LALR parser for the grammar: the definition of the language, used for error
    messages and to build the tables the fast driver runs."""
    from lark import Lark, Transformer, v_args

    methods = {k: v for k, v in vars(_Build).items() if not k.startswith("__")}
    transformer = v_args(inline=True)(type("_LarkBuild", (Transformer,), methods))()
    # Never cache=True: Lark's cache is a pickle at a predictable name in the shared temp
    # directory, so anyone who can write there could run code as the user (issue 10).
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr",
                transformer=transformer, cache=False, maybe_placeholders=False)


def _describe_expected(expected, text: str = "", offset: int = 0) -> str:
    """What the parser would have accepted. Outside every parenthesis ``)`` and ``,`` are
    dropped: LALR's merged states list them wherever an expression may end, even where no
    parenthesis is open."""
    if _paren_depth(text, offset) <= 0:
        expected = [t for t in expected if t not in ("RPAR", "COMMA")]
    names = sorted({_TOKEN_NAMES.get(t, t) for t in expected if not t.startswith("__")})
    if not names:
        return ""
    if len(names) == 1:
        return "expected " + names[0]
    return "expected one of: " + ", ".join(names)


def _paren_depth(text: str, offset: int) -> int:
    """How many parentheses are open before ``offset`` (comments skipped)."""
    depth = 0
    for m in _TOKEN_RE.finditer(text, 0, offset):
        word = m.group()
        depth += (word == "(") - (word == ")") if m.lastindex == 7 else 0
    return depth


def _end_position(text: str) -> tuple[int, int]:
    stripped = text.rstrip()
    line = stripped.count("\n") + 1
    column = len(stripped) - (stripped.rfind("\n") + 1) + 1
    return line, column


def _syntax_error(err: UnexpectedInput, text: str) -> ParseError:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        return ParseError(f"unexpected character {ch!r}", source=text, line=err.line,
                          column=err.column,
                          hint=_describe_expected(err.allowed or (), text, err.pos_in_stream))
    if isinstance(err, (UnexpectedToken, UnexpectedEOF)):
        token = getattr(err, "token", None)
        expected = getattr(err, "expected", None) or getattr(err, "accepts", None) or ()
        if token is None or token.type == "$END":
            line, column = _end_position(text)
            return ParseError("unexpected end of input", source=text, line=line,
                              column=column, hint=_describe_expected(expected, text, len(text)))
        shown = "a new line" if token.type == "_NL" else repr(str(token))
        return ParseError(f"unexpected {shown}", source=text, line=token.line,
                          column=token.column,
                          hint=_describe_expected(expected, text, token.start_pos))
    return ParseError(str(err), source=text)


def _lark_parse(text: str) -> list[Statement]:
    """Parse with Lark itself: slower, but the reference, and the source of error messages."""
    from lark.exceptions import UnexpectedInput

    try:
        return _parser().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(err, text) from None
    except NameResolutionError as err:
        err.source = text
        raise
    except RecursionError:  # defensive: the design has no recursion over input
        raise ParseError("expression nests too deeply") from None


# --------------------------------------------------------------------------- fast driver
# The same LALR tables Lark builds from grammars/expr.lark, run by a lean loop over tokens from
# one regular expression. Lark stays the definition of the language: the tables are Lark's,
# the token patterns are checked against Lark's terminals, and any input the driver does not
# accept (every syntax or name error) is handed to Lark, which then parses it or reports why
# not. The tables are cached as JSON (never pickle) in the user's own cache directory, checked
# before use, so start-up need not import Lark at all.

_KEEP, _SPLICE, _DROP = 0, 1, 2
_TERMINAL_PATTERNS = {  # must equal Lark's; checked when the tables are built
    "POW": r"(?:\*\*|\^)", "NAME": "[A-Za-z_][A-Za-z0-9_]*",
    "NUMBER": r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", "_NL": "\r?\n",
    "COMMENT": "#[^\n]*",
}
_PUNCT = {"=": "EQUAL", ";": "SEMICOLON", "+": "PLUS", "-": "MINUS", "*": "STAR", "/": "SLASH",
          "(": "LPAR", ")": "RPAR", ",": "COMMA"}
_TOKEN_RE = re.compile(
    r"(?P<WS>[ \t\f\r]+)|(?P<COMMENT>#[^\n]*)|(?P<NL>\r?\n)"
    r"|(?P<NUMBER>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<NAME>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<POW>\*\*|\^)|(?P<PUNCT>[=;+\-*/(),])")


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
    """A content digest of the cache (blake2b; its C module alone costs 0.2 ms, hashlib 3 ms)."""
    try:
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover - another Python implementation
        from hashlib import blake2b
    return blake2b(data, digest_size=20).hexdigest()


def _cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/adcli`` (or ``~/.cache/adcli``), created 0700, or None when it is not
    safely ours: a symlink, not a directory, or owned by someone else. Never a shared temp dir."""
    if os.environ.get("ADCLI_NO_GRAMMAR_CACHE"):
        return None
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
    """Lark's version without importing it (50 ms): read from its ``__init__.py``."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("lark")
        if spec is None or not spec.origin:
            return ""
        with open(spec.origin, encoding="utf-8") as fh:
            m = re.search(r"""^__version__\s*(?::\s*str\s*)?=\s*["']([^"']+)["']""",
                          fh.read(65536), re.M)
    except (OSError, ImportError, ValueError):
        return ""
    return m.group(1) if m else ""


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
    try:
        doc = json.loads(raw)
        tables = doc["tables"]
        ok = (doc["format"] == _CACHE_FORMAT and doc["grammar"] == key
              and lark_version and doc["lark"] == lark_version == tables["lark"]
              and doc["digest"] == _digest(json.dumps(tables, sort_keys=True).encode()))
    except (ValueError, KeyError, TypeError):
        return None
    return tables if ok else None


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


@lru_cache(maxsize=1)
def _tables() -> tuple:
    """The LALR tables, from the validated JSON cache or freshly built from Lark."""
    text = grammar_path().read_bytes()
    key = _digest(text + b"adcli-fast-2")
    name = f"lalr-{key[:16]}.json"
    directory = _cache_dir()
    if directory is not None:
        version = _lark_version()
        tables = _unpack_cache(_read_cache(os.path.join(directory, name)), key, version)
        if tables is not None:
            try:
                prepared = _prepare(tables)
                if _shape(_fast_parse(_CANARY, _specialise(prepared))) == _CANARY_SHAPE:
                    return prepared
            except Exception:  # noqa: BLE001 - damaged tables of any kind: rebuild them
                pass
    tables = _build_tables()
    prepared = _prepare(tables)
    if _shape(_fast_parse(_CANARY, _specialise(prepared))) != _CANARY_SHAPE:
        raise RuntimeError("the fast parser disagrees with the grammar on the canary program")
    if directory is not None:
        body = json.dumps(tables, sort_keys=True)
        doc = {"format": _CACHE_FORMAT, "grammar": key, "lark": tables["lark"],
               "digest": _digest(body.encode()), "tables": tables}
        _write_cache(directory, name, json.dumps(doc).encode())
    return prepared


_ALIASES = {None, "add", "sub", "mul", "div", "neg", "pos", "pow", "number", "name", "call",
            "call0", "assign", "output"}


def _prepare(data: dict) -> tuple:
    """Per-rule reducers: which children are kept, spliced (inlined rules) or dropped."""
    if not all(alias in _ALIASES for _o, _e, alias, _x in data["rules"]):
        raise ValueError("unexpected rule alias in the parse tables")
    kept_terminals = {"NAME", "NUMBER", "POW"}
    reducers = []
    for origin, expansion, alias, expand1 in data["rules"]:
        kinds = []
        for sym in expansion:
            if sym.isupper() or sym.startswith("__") and sym.lstrip("_").isupper():
                kinds.append(_KEEP if sym in kept_terminals else _DROP)
            elif sym.startswith("_"):
                kinds.append(_SPLICE)
            else:
                kinds.append(_KEEP)
        reducers.append((len(expansion), origin, tuple(kinds), alias, expand1,
                         origin.startswith("_")))
    states = [dict(row) for row in data["states"]]
    return data["start"], data["end"], states, reducers


def _fast_call(name_tok: tuple, args: tuple) -> Node:
    name, line, column = name_tok
    op = FUNCTIONS[name]  # KeyError: unknown function, Lark reports it
    if len(args) != op.arity:
        raise ValueError("arity")
    return Node(op.name, args, line=line, column=column)


def _reduce_generic(reducer: tuple, children: list):
    _size, origin, kinds, alias, expand1, inline = reducer
    kept: list = []
    if kinds and kinds[0] == _SPLICE:  # left recursion: grow the list in place, not O(n^2)
        kept = children[0]
        kinds, children = kinds[1:], children[1:]
    for kind, v in zip(kinds, children):
        if kind == _KEEP:
            kept.append(v)
        elif kind == _SPLICE:
            kept.extend(v)
    if inline:
        return kept
    if expand1 and len(kept) == 1 and alias is None:
        return kept[0]
    name = alias or origin
    if name == "number":
        return const(float(kept[0]))
    if name == "name":
        text, line, column = kept[0]
        return var(text, line, column)
    if name in ("add", "sub", "mul", "div"):
        return Node(name, (kept[0], kept[1]))
    if name == "pow":
        return Node("pow", (kept[0], kept[2]))
    if name == "neg":
        return Node("neg", (kept[0],))
    if name == "pos":
        return kept[0]
    if name == "arguments":
        return tuple(kept)
    if name == "call":
        return _fast_call(kept[0], kept[1])
    if name == "call0":
        return _fast_call(kept[0], ())
    if name == "assign":
        text, line, column = kept[0]
        return Statement(text, kept[1], line, column)
    if name == "output":
        return Statement(None, kept[0], kept[0].line, kept[0].column)
    if name == "start":
        return kept
    raise ValueError(f"no reducer for {name}")


@lru_cache(maxsize=1)
def _fast_reducers() -> tuple:
    return _specialise(_tables())


def _specialise(prepared: tuple) -> tuple:
    """Specialised reductions for the hot rules; the rest go through ``_reduce_generic``."""
    start, end, states, reducers = prepared
    fast = []
    for r in reducers:
        size, origin, kinds, alias, expand1, inline = r
        if not inline and expand1 and alias is None and kinds.count(_KEEP) == 1 \
                and _SPLICE not in kinds:
            fast.append((size, 0, kinds.index(_KEEP), origin))  # pass one child through
        elif alias in ("add", "sub", "mul", "div", "pow") and kinds == (_KEEP, _DROP, _KEEP) \
                or alias == "pow" and kinds == (_KEEP, _KEEP, _KEEP):
            fast.append((size, 1, alias, origin))
        elif alias == "number" and size == 1:
            fast.append((size, 3, None, origin))
        elif alias == "name" and size == 1:
            fast.append((size, 4, None, origin))
        else:
            fast.append((size, 2, r, origin))
    return start, end, states, fast


def _fast_parse(text: str, tables: tuple | None = None) -> list[Statement]:
    start, end, states, reducers = tables or _fast_reducers()
    state_stack = [start]
    value_stack: list = []
    push_state, push_value = state_stack.append, value_stack.append
    line, line_start = 1, 0
    punct = _PUNCT
    pos = 0
    tok = value = None
    for m in _TOKEN_RE.finditer(text):
        if m.start() != pos:
            raise ValueError("unexpected character")
        pos = m.end()
        kind = m.lastindex  # 1 WS, 2 COMMENT, 3 NL, 4 NUMBER, 5 NAME, 6 POW, 7 PUNCT
        if kind == 5:
            tok, value = "NAME", (m.group(), line, m.start() - line_start + 1)
        elif kind == 7:
            tok, value = punct[m.group()], None
        elif kind == 4:
            tok, value = "NUMBER", m.group()
        elif kind <= 2:
            continue
        elif kind == 3:
            tok, value = "_NL", None
            line += 1
            line_start = pos
        else:
            tok, value = "POW", None
        while True:
            action = states[state_stack[-1]][tok]  # KeyError: syntax error, Lark reports it
            if action >= 0:
                push_state(action)
                push_value(value)
                break
            size, how, info, origin = reducers[~action]
            if how == 0 and size == 1:  # unit rule: the value stays, only the state moves
                state_stack[-1] = states[state_stack[-2]][origin]
                continue
            if how == 1:
                result = Node(info, (value_stack[-3], value_stack[-1]))
            elif how == 3:
                result = const(float(value_stack[-1]))
            elif how == 4:
                name, ln, col = value_stack[-1]
                result = Node("var", name=name, line=ln, column=col)
            elif how == 0:
                result = value_stack[info - size]
            else:
                result = _reduce_generic(info, value_stack[-size:] if size else [])
            if size:
                del state_stack[-size:]
                del value_stack[-size:]
            push_state(states[state_stack[-1]][origin])
            push_value(result)
    if pos != len(text):
        raise ValueError("unexpected character")
    while True:
        action = states[state_stack[-1]]["$END"]
        if action >= 0:
            raise ValueError("shift at end")
        size, how, info, origin = reducers[~action]
        children = value_stack[-size:] if size else []
        if how == 0:
            result = children[info]
        elif how == 1:
            result = Node(info, (children[0], children[2]))
        elif how == 3:
            result = const(float(children[0]))
        elif how == 4:
            name, ln, col = children[0]
            result = Node("var", name=name, line=ln, column=col)
        else:
            result = _reduce_generic(info, children)
        if size:
            del state_stack[-size:]
            del value_stack[-size:]
        push_state(states[state_stack[-1]][origin])
        push_value(result)
        if state_stack[-1] == end:
            return value_stack[-1]


def _diagnose(text: str) -> AdcliError | None:
    """Why the fast driver rejected ``text``, in Lark's words, without building Lark (40 ms).

    The same tables run in the same order of lexing and reductions as Lark's contextual lexer
    and LALR parser, so the first error found is Lark's: a character no terminal matches, a
    token the state does not accept (Lark's lexer then lists the state's terminals), a token
    that fails after reductions or the end of the input (the parser lists the state's
    terminals), or a call of an unknown function or with the wrong number of arguments. A test
    compares every message with Lark's. None: no error found (Lark then has the last word)."""
    start, end, states, reducers = _tables()
    stack, values = [start], []
    line, line_start, pos = 1, 0, 0

    def terminals(state: int, end_too: bool) -> set[str]:
        return {k for k in states[state] if k.isupper() and (end_too or k != "$END")}

    def reduce(index: int) -> AdcliError | None:
        size = reducers[index][0]
        children = values[-size:] if size else []
        if reducers[index][3] in ("call", "call0"):
            name, ln, col = children[0]
            args = [c for c in children[1:] if isinstance(c, tuple)]
            error = _call_error(name, ln, col, len(args[0]) if args else 0)
            if error is not None:
                return error
        result = _reduce_generic(reducers[index], children)
        if size:
            del stack[-size:]
            del values[-size:]
        stack.append(states[stack[-1]][reducers[index][1]])
        values.append(result)
        return None

    for m in _TOKEN_RE.finditer(text):
        if m.start() != pos:
            break
        pos = m.end()
        kind = m.lastindex  # 1 WS, 2 COMMENT, 3 NL, 4 NUMBER, 5 NAME, 6 POW, 7 PUNCT
        if kind <= 2:
            continue
        column = m.start() - line_start + 1
        word = m.group()
        tok = ("_NL", "NUMBER", "NAME", "POW", _PUNCT.get(word))[kind - 3]
        value = (word, line, column) if kind == 5 else word
        where = {"source": text, "line": line, "column": column}
        shown = "a new line" if kind == 3 else repr(word)
        if kind == 3:
            line, line_start = line + 1, pos
        if tok not in states[stack[-1]]:  # Lark's contextual lexer refuses it
            return ParseError(f"unexpected {shown}", **where,
                              hint=_describe_expected(terminals(stack[-1], False), text,
                                                      m.start()))
        while True:
            action = states[stack[-1]].get(tok)
            if action is None:  # refused by the parser, after reductions
                return ParseError(f"unexpected {shown}", **where,
                                  hint=_describe_expected(terminals(stack[-1], True), text,
                                                          m.start()))
            if action >= 0:
                stack.append(action)
                values.append(value)
                break
            error = reduce(~action)
            if error is not None:
                return error
    if pos != len(text):
        return ParseError(f"unexpected character {text[pos]!r}", source=text, line=line,
                          column=pos - line_start + 1,
                          hint=_describe_expected(terminals(stack[-1], False), text, pos))
    while stack[-1] != end:
        action = states[stack[-1]].get("$END")
        if action is None or action >= 0:
            ln, col = _end_position(text)
            return ParseError("unexpected end of input", source=text, line=ln, column=col,
                              hint=_describe_expected(terminals(stack[-1], True), text,
                                                      len(text)))
        error = reduce(~action)
        if error is not None:
            return error
    return None


def parse_program(text: str, *, max_bytes: int | None = DEFAULT_MAX_SOURCE_BYTES) -> Program:
    """Parse adcli source into a Program. Raises :class:`~adcli.errors.AdcliError` on bad input."""
    if max_bytes is not None and len(text) > max_bytes:
        raise ParseError(
            f"input is {len(text):,} bytes, over the limit of {max_bytes:,} bytes",
            hint="raise the limit with --max-size BYTES if you really mean it")
    if not text.strip() or all(
            not ln.split("#", 1)[0].strip(" \t\r;") for ln in text.split("\n")):
        raise ParseError("empty expression: nothing to evaluate")
    try:
        statements = _fast_parse(text)
    except Exception:  # noqa: BLE001 - any trouble: say why, as Lark would
        try:
            error = _diagnose(text)
        except Exception:  # noqa: BLE001 - the diagnosis failed: Lark has the last word
            error = None
        if error is not None:
            error.source = text
            raise error from None
        statements = _lark_parse(text)
    program = Program(statements, text)
    for stmt in statements[:-1]:
        if stmt.name is None:
            raise ParseError(
                "only the last statement may be a bare expression; give this one a name "
                "(name = expr) or remove it", source=text, line=stmt.line, column=stmt.column)
    return program
