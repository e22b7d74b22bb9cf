"""The fast parser driver: Lark's LALR tables (:mod:`adcli.language.lalr_tables`) run by a lean
loop."""

from __future__ import annotations

from itertools import chain

from ..core.syntax import Node, Reduction, Statement, const, var
from ..ops import FUNCTIONS
from .scan import _python_scan, _scan, word_re

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    import re
    from collections.abc import Iterable, Iterator

# --------------------------------------------------------------------------- fast driver
# The same LALR tables Lark builds from grammars/expr.lark, run by a lean loop over the tokens
# of :mod:`adcli.language.scan`. Lark stays the definition of the language: the tables are
# Lark's, the token patterns are checked against Lark's terminals, and any input the driver
# does not accept (every syntax or name error) is handed to Lark, which then parses it or
# reports why not. The tables ship with the package (or, for an edited grammar, are cached as
# JSON, never pickle, in the user's own cache directory, checked before use), so start-up need
# not import Lark at all.

#: What the driver raises for a text it does not accept, and nothing else: KeyError for a token
#: the state has no action for or an unknown function, ValueError for a character no token
#: matches or a call with the wrong number of arguments.  Any other exception is a bug and is
#: not taken for a syntax error (the tests run the driver on thousands of bad texts).
REFUSED = (KeyError, ValueError)

_KEEP, _SPLICE, _DROP = 0, 1, 2
_REDUCTIONS = frozenset(("sum", "prod", "max", "min", "logsumexp"))  # grammar.REDUCTIONS
_PUNCT = {"=": "EQUAL", ";": "SEMICOLON", "+": "PLUS", "-": "MINUS", "*": "STAR", "/": "SLASH",
          "(": "LPAR", ")": "RPAR", ",": "COMMA", "[": "LSQB", "]": "RSQB", "..": "_DOTDOT"}
#: The tokens one by one, as Lark's lexer sees them, for error messages (compiled on first
#: use by :func:`token_re`: a text that parses never needs it).
_TOKEN_PATTERN = (
    r"(?P<WS>[ \t\f\r]+)|(?P<COMMENT>#[^\n]*)|(?P<NL>\r?\n)"
    r"|(?P<NUMBER>(?:[0-9]+(?:\.(?!\.)[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<NAME>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<POW>\*\*|\^)|(?P<PUNCT>\.\.|[=;+\-*/(),\[\]])")


def token_re() -> re.Pattern[str]:
    """:data:`_TOKEN_PATTERN`, compiled (``re`` keeps it)."""
    import re

    return re.compile(_TOKEN_PATTERN)


_ALIASES = {None, "add", "sub", "mul", "div", "neg", "pos", "pow", "number", "name", "call",
            "call0", "assign", "output", "index", "reduce", "assign_range"}


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
    return Node(op.name, args, 0.0, "", line, column)


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
    if name == "index":
        text, line, column = kept[0]
        return Node("index", kept[1], 0.0, text, line, column)
    if name == "range":
        text, line, column = kept[0]
        return (text, kept[1], kept[2], line, column)
    if name == "ranges":
        return tuple(kept)
    if name == "reduce":
        text, line, column = kept[0]
        if text not in _REDUCTIONS:
            raise KeyError(text)  # Lark reports it
        index, lo, hi, iline, icolumn = kept[1]
        return Reduction(text, index, lo, hi, kept[2], line, column, iline, icolumn)
    if name == "assign_range":
        text, line, column = kept[0]
        return Statement(text, kept[2], line, column, kept[1])
    if name == "output":
        return Statement(None, kept[0], kept[0].line, kept[0].column)
    if name == "start":
        return kept
    raise ValueError(f"no reducer for {name}")



def _specialise(prepared: tuple) -> tuple:
    """The driver's form of the tables: symbols numbered, each state's row a list indexed by
    symbol (a refused symbol holds the action of an error entry), and specialised reductions
    for the hot rules; the rest go through ``_reduce_generic``.

    ``how``: 0 pass one child through, 1 a binary op node, 2 generic, 3 a number, 4 a name,
    5 generic that makes a new node (a call, a negation), so the driver records it, 6 a call
    with arguments, 7 a list of one argument, 8 refused (the error entry)."""
    start, end, states, reducers = prepared
    symbols: dict[str, int] = {}
    for name in (*_SCANNED, "$END"):  # numbered as the scanner's groups, from 0
        symbols.setdefault(name, len(symbols))
    for row in states:
        for name in row:
            symbols.setdefault(name, len(symbols))
    for r in reducers:
        symbols.setdefault(r[1], len(symbols))
    if len(states) >= 1 << 10 or len(symbols) >= 1 << 10:
        raise ValueError("parse tables too large for the fast driver")
    error = ~len(reducers)
    rows = []
    for row in states:
        flat = [error] * len(symbols)
        for name, action in row.items():
            if not -len(reducers) <= action < len(states):
                raise ValueError("parse table action out of range")
            flat[symbols[name]] = action
        rows.append(flat)
    fast = []
    for r in reducers:
        size, origin, kinds, alias, expand1, inline = r
        goto = symbols[origin]
        if not inline and expand1 and alias is None and kinds.count(_KEEP) == 1 \
                and _SPLICE not in kinds:
            fast.append((size, 0, kinds.index(_KEEP), goto))  # pass one child through
        elif alias in ("add", "sub", "mul", "div", "pow") and kinds == (_KEEP, _DROP, _KEEP) \
                or alias == "pow" and kinds == (_KEEP, _KEEP, _KEEP):
            fast.append((size, 1, alias, goto))
        elif alias == "number" and size == 1:
            fast.append((size, 3, None, goto))
        elif alias == "name" and size == 1:
            fast.append((size, 4, None, goto))
        elif alias == "call" and kinds == (_KEEP, _DROP, _KEEP, _DROP):
            fast.append((size, 6, None, goto))  # NAME "(" arguments ")"
        elif alias is None and origin == "arguments" and kinds == (_KEEP,):
            fast.append((size, 7, None, goto))  # one argument
        elif alias in ("call", "call0", "neg"):
            fast.append((size, 5, r, goto))
        else:
            fast.append((size, 2, r, goto))
    fast.append((0, 8, None, -1))  # the error entry
    # Unit chains (atom -> power -> unary -> product -> sum -> expr) resolved once per
    # (state below, state on top, lookahead) and remembered: filled as inputs need them, at
    # most states^2 x terminals entries.
    units: dict[int, int] = {}
    return start, end, rows, fast, units


def _unit_chain(states: list, reducers: list, below: int, top: int, tok: int) -> int:
    """The state on top once every unit reduction that ``tok`` calls for on ``top`` (with
    ``below`` under it) is done. Unit reductions replace only the top state, so the chain
    depends on these three alone."""
    while True:
        action = states[top][tok]
        if action >= 0:
            return top
        size, how, _info, origin = reducers[~action]
        if not (how == 0 and size == 1):
            return top
        top = states[below][origin]


#: The terminals the scanner makes, numbered from 0 in this order by ``_specialise``.
_SCANNED = ("NAME", "POW", "PLUS", "STAR", "LPAR", "RPAR", "MINUS", "SLASH", "COMMA", "EQUAL",
            "SEMICOLON", "NUMBER", "_NL", "LSQB", "RSQB", "_DOTDOT")
_END = len(_SCANNED)  # the symbol number of "$END"
_NUMBER, _NL = _SCANNED.index("NUMBER"), _SCANNED.index("_NL")
#: Tokens known by their whole text: operators, punctuation and the new line.
_FIXED = {text: _SCANNED.index(name) for text, name in (
    ("**", "POW"), ("^", "POW"), ("+", "PLUS"), ("*", "STAR"), ("(", "LPAR"), (")", "RPAR"),
    ("-", "MINUS"), ("/", "SLASH"), (",", "COMMA"), ("=", "EQUAL"), (";", "SEMICOLON"),
    ("\n", "_NL"), ("[", "LSQB"), ("]", "RSQB"), ("..", "_DOTDOT"))}
#: The others by their first character: 0 a name, 1 a number (or a lone "."), 2 a comment.
_FIRST = dict.fromkeys("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_", 0)
_FIRST.update(dict.fromkeys("0123456789.", 1), **{"#": 2})
#: Where a token surely ends (outside comments), to cut the text into windows for the
#: scanner: after a character that is a whole token and never inside one (not + or -, inside
#: "1e+5", not *, inside "**"), or before a blank that follows a token (a blank is inside no
#: token). The match ends at the cut.
_CUT = r"[()^,;=/]|(?<=[^ \t\f\r])(?=[ \t\f])"  # compiled when a text is that long
_WINDOW = 1 << 16


def _windows(text: str, end: int) -> Iterator[tuple[int, int]]:
    """[a, b) windows covering text[:end], each cut where a token ends (after a new line, or
    where ``_CUT`` matches outside a comment), so scanning them one by one gives the
    tokens of the whole text while holding about a window's tokens at a time (a window runs
    on past ``_WINDOW`` characters until such a place: all of a long line of names, numbers
    and + - * without blanks, say)."""
    a = 0
    while a < end:
        b = a + _WINDOW
        if b >= end:
            yield a, end
            return
        cut = text.rfind("\n", a, b) + 1  # after a new line: never inside a token
        if cut <= a:
            import re

            found = re.compile(_CUT).search(text, b, end)
            if found is None:
                yield a, end
                return
            cut = found.end()
            line = max(a, text.rfind("\n", a, cut) + 1)  # a is never inside a comment
            if text.find("#", line, cut) >= 0:  # inside a comment: cut after its line
                cut = text.find("\n", cut, end) + 1
                if cut <= 0:
                    yield a, end
                    return
        yield a, cut
        a = cut


def _fast_parse(text: str, tables: tuple, order: list | None = None) -> list[Statement]:
    """Parse ``text`` with the tables of :func:`_specialise`; raises one of :data:`REFUSED`
    for any text it does not accept. Every node made is appended to ``order`` (when given):
    for one statement, that is the post-order of its tree (see :func:`adcli.core.lower.lower`)."""
    start, end, states, reducers, units = tables
    # The three nodes made most (names, numbers, binary operations) are made here as Node's
    # __init__ would, slot by slot: a class call costs measurably more a node. Every slot of
    # Node is set (a test checks every slot is readable).
    new = object.__new__
    state_stack = [start]
    value_stack: list = []
    push_state, push_value = state_stack.append, value_stack.append
    record = (order if order is not None else []).append
    line, line_start = 1, 0
    top = start  # always state_stack[-1]
    fixed, first, number, new_line = _FIXED, _FIRST, _NUMBER, _NL
    pos = 0  # where the next word starts
    end_at = len(text.rstrip(" \t\f\r"))
    if _python_scan(end_at):
        words: Iterable[str] = _scan(text, end_at)
    else:  # one window's words at a time (see _windows), chained into one stream
        find_words = word_re().findall
        words = chain.from_iterable(find_words(text, a, b) for a, b in _windows(text, end_at))
    for word in words:
        t = word.lstrip(" \t\f\r")
        tok = fixed.get(t)
        if tok is None:
            kind = first.get(t[0], 3)
            if kind == 0:
                tok, value = 0, (t, line, pos + len(word) - len(t) - line_start + 1)  # NAME
            elif kind == 1 and t != ".":
                tok, value = number, t
            elif kind == 2:  # a comment
                pos += len(word)
                continue
            else:
                raise ValueError("unexpected character")
        else:
            value = None
            if tok == new_line:
                line += 1
                line_start = pos + len(word)
        pos += len(word)
        while True:
            action = states[top][tok]
            if action >= 0:
                push_state(action)
                push_value(value)
                top = action
                break
            size, how, info, origin = reducers[~action]
            if size == 1:
                if how == 0:  # a unit chain: the value stays, only the top state moves
                    below = state_stack[-2]
                    key = below << 20 | top << 10 | tok
                    found = units.get(key)
                    if found is None:
                        found = units[key] = _unit_chain(states, reducers, below, top, tok)
                    state_stack[-1] = top = found
                    continue
                if how == 4:
                    result = new(Node)
                    result.name, result.line, result.column = value_stack[-1]
                    result.op = "var"
                    result.args = ()
                    result.value = 0.0
                    record(result)
                elif how == 3:
                    result = new(Node)
                    result.op = "const"
                    result.args = ()
                    result.value = float(value_stack[-1])
                    result.name = ""
                    result.line = result.column = 0
                    record(result)
                elif how == 7:
                    result = (value_stack[-1],)
                else:
                    result = _reduce_generic(info, [value_stack[-1]])
                    if how == 5:
                        record(result)
                value_stack[-1] = result
                state_stack[-1] = top = states[state_stack[-2]][origin]
                continue
            if how == 1:
                result = new(Node)
                result.op = info
                result.args = (value_stack[-3], value_stack[-1])
                result.value = 0.0
                result.name = ""
                result.line = result.column = 0
                record(result)
            elif how == 6:
                result = _fast_call(value_stack[-4], value_stack[-2])
                record(result)
            elif how == 0:
                result = value_stack[info - size]
            elif how == 8:
                raise KeyError("syntax error")  # Lark reports it
            else:
                result = _reduce_generic(info, value_stack[-size:] if size else [])
                if how == 5:
                    record(result)
            if size:
                del state_stack[-size:]
                del value_stack[-size:]
            top = states[state_stack[-1]][origin]
            push_state(top)
            push_value(result)
    while True:
        action = states[state_stack[-1]][_END]
        if action >= 0:
            raise ValueError("shift at end")
        size, how, info, origin = reducers[~action]
        children = value_stack[-size:] if size else []
        if how == 0:
            result = children[info]
        elif how == 1:
            result = Node(info, (children[0], children[2]))
            record(result)
        elif how == 3:
            result = Node("const", (), float(children[0]))
            record(result)
        elif how == 4:
            name, ln, col = children[0]
            result = Node("var", (), 0.0, name, ln, col)
            record(result)
        elif how == 6:
            result = _fast_call(children[0], children[2])
            record(result)
        elif how == 7:
            result = (children[0],)
        elif how == 8:
            raise KeyError("syntax error at the end")  # Lark reports it
        else:
            result = _reduce_generic(info, children)
            if how == 5:
                record(result)
        if size:
            del state_stack[-size:]
            del value_stack[-size:]
        push_state(states[state_stack[-1]][origin])
        push_value(result)
        if state_stack[-1] == end:
            return value_stack[-1]
