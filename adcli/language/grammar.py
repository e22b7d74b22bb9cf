"""The language as Lark defines it: the grammar file, Lark's LALR parser with inline callbacks
(the reference the fast driver is checked against) and the wording of its syntax errors.

Lark is imported only here and only when needed: for error messages the fast explainer
(:mod:`adcli.language.parse_errors`) cannot give, and to build the tables
(:mod:`adcli.language.lalr_tables`).
"""

from __future__ import annotations

from ..core.syntax import Node, Reduction, Statement, call, const, var
from ..errors import NameResolutionError, ParseError
from ..ops import FUNCTIONS
from . import grammar_file, once
from .lalr import token_re

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from pathlib import Path

    from lark import Token
    from lark.exceptions import UnexpectedInput

_TOKEN_NAMES = {
    "NUMBER": "a number", "NAME": "a name", "LPAR": "'('", "RPAR": "')'", "PLUS": "'+'",
    "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "POW": "'^'", "COMMA": "','",
    "SEMICOLON": "';'", "EQUAL": "'='", "LSQB": "'['", "RSQB": "']'", "_DOTDOT": "'..'",
    "_NL": "a new line", "$END": "the end of the input",
}


def grammar_path() -> Path:
    """:func:`grammar_file` as a :class:`pathlib.Path`."""
    from pathlib import Path

    return Path(grammar_file())


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

    def index(self, tok: Token, args: tuple) -> Node:
        return Node("index", tuple(args), 0.0, str(tok), tok.line, tok.column)

    def range(self, tok: Token, lo: Node, hi: Node) -> tuple:
        return (str(tok), lo, hi, tok.line, tok.column)

    def ranges(self, *ranges: tuple) -> tuple:
        return ranges

    def reduce(self, tok: Token, rng: tuple, body: Node) -> Node:
        error = _reduction_error(str(tok), tok.line, tok.column)
        if error is not None:
            raise error
        return Reduction(str(tok), rng[0], rng[1], rng[2], body, tok.line, tok.column,
                         rng[3], rng[4])

    def assign_range(self, tok: Token, ranges: tuple, expr: Node) -> Statement:
        return Statement(str(tok), expr, tok.line, tok.column, tuple(ranges))

    def assign(self, tok: Token, expr: Node) -> Statement:
        return Statement(str(tok), expr, tok.line, tok.column)

    def output(self, expr: Node) -> Statement:
        return Statement(None, expr, expr.line, expr.column)

    def start(self, *statements: Statement) -> list[Statement]:
        return list(statements)


#: What ``fn(i = lo..hi, body)`` may be: the reductions over a range (adcli/language/indices.py).
REDUCTIONS = ("sum", "prod", "max", "min", "logsumexp")


def _reduction_error(name: str, line: int, column: int) -> NameResolutionError | None:
    """The error for ``name(i = lo..hi, ...)`` when ``name`` is no reduction."""
    if name in REDUCTIONS:
        return None
    return NameResolutionError(f"'{name}' is not a reduction over a range", line=line,
                               column=column, hint="reductions: " + ", ".join(REDUCTIONS))


def _call_error(name: str, line: int, column: int, nargs: int) -> NameResolutionError | None:
    """The error for a call of an unknown function or with the wrong number of arguments."""
    op = FUNCTIONS.get(name)
    if op is None:
        formula = _MISSING_FUNCTIONS.get(name.lower())
        if formula is not None:
            return NameResolutionError(f"unknown function '{name}'", line=line, column=column,
                                       hint=f"adcli has no {name}; write {formula}")
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
            "arctan2": "atan2", "power": "pow", "fabs": "abs",
            "maximum": "max", "minimum": "min", "logistic": "sigmoid", "expit": "sigmoid",
            "heaviside": "step", "sgn": "sign", "signum": "sign", "exp1m": "expm1"}


#: Functions adcli does not have, whose nearest spelling would mislead (arcsinh is not sinh):
#: each with its formula in the language.
_MISSING_FUNCTIONS = {
    **dict.fromkeys(("asinh", "arcsinh", "arsinh"), "log(x + sqrt(x^2 + 1))"),
    **dict.fromkeys(("acosh", "arccosh", "arcosh"), "log(x + sqrt(x^2 - 1)) (x >= 1)"),
    **dict.fromkeys(("atanh", "arctanh", "artanh"), "0.5*log1p(2*x/(1 - x)) (|x| < 1)"),
}


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


@once
def _parser():
    """Lark's LALR parser for the grammar: the definition of the language, used for error
    messages and to build the tables the fast driver runs."""
    from lark import Lark, Transformer, v_args

    methods = {k: v for k, v in vars(_Build).items() if not k.startswith("__")}
    transformer = v_args(inline=True)(type("_LarkBuild", (Transformer,), methods))()
    # Never cache=True: Lark's cache is a pickle at a predictable name in the shared temp
    # directory, so anyone who can write there could run code as the user.
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
    for m in token_re().finditer(text, 0, offset):
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
