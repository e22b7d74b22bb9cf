"""Why the fast driver rejected a text, in Lark's words, without importing Lark."""

from __future__ import annotations

from ..errors import AdcliError, ParseError
from .grammar import _call_error, _describe_expected, _end_position, _reduction_error
from .lalr import _PUNCT, _reduce_generic, token_re
from .lalr_tables import _tables


def _diagnose(text: str) -> AdcliError | None:
    """Why the fast driver rejected ``text``, in Lark's words, without building Lark's parser.

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
        if reducers[index][3] == "reduce":
            name, ln, col = children[0]
            error = _reduction_error(name, ln, col)
            if error is not None:
                return error
        result = _reduce_generic(reducers[index], children)
        if size:
            del stack[-size:]
            del values[-size:]
        stack.append(states[stack[-1]][reducers[index][1]])
        values.append(result)
        return None

    for m in token_re().finditer(text):
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
