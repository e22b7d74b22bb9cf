"""Text -> :class:`~adcli.syntax.Program`.

Lark's LALR parser is an iterative loop and the transformer below runs inline, as each rule is
reduced, so no parse tree is built and nothing recurses: 50,000 nested parentheses are fine.
Numbers become float64 the moment they are read (``9^9^9^9`` is inf, never a big int).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .errors import NameResolutionError, ParseError
from .ops import FUNCTIONS
from .syntax import Node, Program, Statement, call, const, var

#: Refuse sources larger than this many bytes unless the caller raises the limit.
DEFAULT_MAX_SOURCE_BYTES = 4 * 1024 * 1024

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


@v_args(inline=True)
class _Build(Transformer):
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
        op = FUNCTIONS.get(name)
        if op is None:
            raise NameResolutionError(
                f"unknown function '{name}'", line=tok.line, column=tok.column,
                hint="functions: " + ", ".join(sorted(FUNCTIONS)))
        if len(args) != op.arity:
            want = "1 argument" if op.arity == 1 else f"{op.arity} arguments"
            raise NameResolutionError(
                f"{name}() takes {want}, got {len(args)}", line=tok.line, column=tok.column)
        return call(op.name, *args, line=tok.line, column=tok.column)

    def call0(self, tok: Token) -> Node:
        return self.call(tok, ())

    def assign(self, tok: Token, expr: Node) -> Statement:
        return Statement(str(tok), expr, tok.line, tok.column)

    def output(self, expr: Node) -> Statement:
        return Statement(None, expr, expr.line, expr.column)

    def start(self, *statements: Statement) -> list[Statement]:
        return list(statements)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    cache: bool | str = True
    if os.environ.get("ADCLI_NO_GRAMMAR_CACHE"):
        cache = False
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr",
                transformer=_Build(), cache=cache, maybe_placeholders=False)


def _describe_expected(expected) -> str:
    names = sorted({_TOKEN_NAMES.get(t, t) for t in expected if not t.startswith("__")})
    if not names:
        return ""
    if len(names) == 1:
        return "expected " + names[0]
    return "expected one of: " + ", ".join(names)


def _end_position(text: str) -> tuple[int, int]:
    stripped = text.rstrip()
    line = stripped.count("\n") + 1
    column = len(stripped) - (stripped.rfind("\n") + 1) + 1
    return line, column


def _syntax_error(err: UnexpectedInput, text: str) -> ParseError:
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        return ParseError(f"unexpected character {ch!r}", source=text, line=err.line,
                          column=err.column, hint=_describe_expected(err.allowed or ()))
    if isinstance(err, (UnexpectedToken, UnexpectedEOF)):
        token = getattr(err, "token", None)
        expected = getattr(err, "expected", None) or getattr(err, "accepts", None) or ()
        if token is None or token.type == "$END":
            line, column = _end_position(text)
            return ParseError("unexpected end of input", source=text, line=line,
                              column=column, hint=_describe_expected(expected))
        shown = "a new line" if token.type == "_NL" else repr(str(token))
        return ParseError(f"unexpected {shown}", source=text, line=token.line,
                          column=token.column, hint=_describe_expected(expected))
    return ParseError(str(err), source=text)


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
        statements = _parser().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(err, text) from None
    except NameResolutionError as err:
        err.source = text
        raise
    except RecursionError:  # defensive: the design has no recursion over input
        raise ParseError("expression nests too deeply") from None
    program = Program(statements, text)
    for stmt in statements[:-1]:
        if stmt.name is None:
            raise ParseError(
                "only the last statement may be a bare expression; give this one a name "
                "(name = expr) or remove it", source=text, line=stmt.line, column=stmt.column)
    return program
