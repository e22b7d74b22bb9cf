"""The fast parser driver: Lark's LALR tables (:mod:`adcli.lalr_tables`) run by a lean loop."""

from __future__ import annotations

import re

from .ops import FUNCTIONS
from .syntax import Node, Statement, const, var

# --------------------------------------------------------------------------- fast driver
# The same LALR tables Lark builds from grammars/expr.lark, run by a lean loop over tokens from
# one regular expression. Lark stays the definition of the language: the tables are Lark's,
# the token patterns are checked against Lark's terminals, and any input the driver does not
# accept (every syntax or name error) is handed to Lark, which then parses it or reports why
# not. The tables are cached as JSON (never pickle) in the user's own cache directory, checked
# before use, so start-up need not import Lark at all.

#: What the driver raises for a text it does not accept, and nothing else: KeyError for a token
#: the state has no action for or an unknown function, ValueError for a character no token
#: matches or a call with the wrong number of arguments.  Any other exception is a bug and is
#: not taken for a syntax error (the tests run the driver on thousands of bad texts).
REFUSED = (KeyError, ValueError)

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


def _fast_parse(text: str, tables: tuple) -> list[Statement]:
    start, end, states, reducers = tables
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
