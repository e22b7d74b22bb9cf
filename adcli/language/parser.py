"""Text -> :class:`~adcli.core.syntax.Program`.

Lark's LALR parser is an iterative loop and the transformer below runs inline, as each rule is
reduced, so no parse tree is built and nothing recurses: 50,000 nested parentheses are fine.
Numbers become float64 the moment they are read (``9^9^9^9`` is inf, never a big int).

The parts: :mod:`adcli.language.lalr` runs Lark's LALR tables in a lean loop (the fast path),
:mod:`adcli.language.scan` cuts the text into its tokens, :mod:`adcli.language.lalr_tables`
finds the tables (shipped in :mod:`adcli.language.lalr_data`, or built from Lark and cached),
:mod:`adcli.language.parse_errors` says why the fast driver refused a text, in Lark's words, and
:mod:`adcli.language.grammar` is Lark itself: the definition of the language and the last word.
"""

from __future__ import annotations

from ..core.syntax import Program, Statement
from ..errors import ParseError
from . import lalr
from .lalr_tables import _fast_reducers, rebuild_tables, tables_source

#: Refuse sources larger than this many bytes unless the caller raises the limit.
#: Inputs over this size are refused at once (``--max-size`` changes it): at 2 MiB the
#: densest input, a sum of a million one-letter terms, still runs in seconds, not minutes
#: (bench/README.md has the times).
DEFAULT_MAX_SOURCE_BYTES = 2 * 1024 * 1024


def may_have_indices(text: str) -> bool:
    """A cheap test on the source: index notation needs ``[`` or ``..``."""
    return "[" in text or ".." in text


def _fast_parse(text: str, order: list | None = None) -> list[Statement]:
    """The fast driver over the cached tables (raises on any input it does not accept); the
    nodes it makes are appended to ``order`` in the order made. An error other than a refusal
    from tables read from the cache (or the package) means they are damaged: rebuilt from
    Lark, and parsed again."""
    try:
        return lalr._fast_parse(text, _fast_reducers(), order)
    except lalr.REFUSED:
        raise
    except Exception:
        if tables_source() == "lark":
            raise
    rebuild_tables()
    if order is not None:
        order.clear()
    return lalr._fast_parse(text, _fast_reducers(), order)


def parse_program(text: str, *, max_bytes: int | None = DEFAULT_MAX_SOURCE_BYTES) -> Program:
    """Parse adcli source into a Program. Raises :class:`~adcli.errors.AdcliError` on bad input."""
    if max_bytes is not None and len(text) > max_bytes:
        raise ParseError(
            f"input is {len(text):,} bytes, over the limit of {max_bytes:,} bytes",
            hint="raise the limit with --max-size BYTES if you really mean it")
    if not text.strip() or all(
            not ln.split("#", 1)[0].strip(" \t\r;") for ln in text.split("\n")):
        raise ParseError("empty expression: nothing to evaluate")
    order: list | None = []
    try:
        statements = _fast_parse(text, order)
    except lalr.REFUSED:  # a syntax or name error: say why, as Lark would
        from .grammar import _lark_parse  # (loaded here: a good parse needs neither)
        from .parse_errors import _diagnose

        error = _diagnose(text)
        if error is not None:
            error.source = text
            raise error from None
        statements = _lark_parse(text)
        order = None
    program = Program(statements, text, order if len(statements) == 1 else None)
    for stmt in statements[:-1]:
        if stmt.name is None:
            raise ParseError(
                "only the last statement may be a bare expression; give this one a name "
                "(name = expr) or remove it", source=text, line=stmt.line, column=stmt.column)
    if may_have_indices(text):  # x[i], sum(i = 1..n, ...): unrolled to scalars here
        from ..core.lower import MAX_NODES
        from .indices import expand

        program = expand(program, MAX_NODES if max_bytes else None)
    return program
