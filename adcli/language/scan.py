"""The scanner of the fast driver: Lark's terminals as one regular expression, and the same
scan in plain Python for the small texts of a fresh process (importing ``re``, with enum,
functools and collections under it, costs more than scanning tens of kilobytes in Python)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    import re

_TERMINAL_PATTERNS = {  # must equal Lark's; checked when the tables are built
    "POW": r"(?:\*\*|\^)", "NAME": "[A-Za-z_][A-Za-z0-9_]*",
    "NUMBER": r"([0-9]+(\.(?!\.)[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", "_NL": "\r?\n",
    "COMMENT": "#[^\n]*",
}

#: Every token with the blanks before it, one string each (``findall``: no match objects).
#: Every position holds a token or trailing blanks (the last alternative takes any other
#: character: the driver refuses it), so the strings are contiguous and their lengths give
#: the positions; trailing blanks are cut off first (``endpos``), so no blank run is ever
#: rescanned. The patterns are Lark's terminals (``_TERMINAL_PATTERNS``, checked against the
#: grammar), without capturing groups; "**" comes before the last branch, which takes "*".
#: Compiled on first use (:func:`word_re`): see :func:`_scan`.
_WORD_PATTERN = r"[ \t\f\r]*(?:" + "|".join((
    _TERMINAL_PATTERNS["NAME"], r"\*\*", r"\.\.",
    _TERMINAL_PATTERNS["NUMBER"].replace("(?!", "\0").replace("(", "(?:").replace("\0", "(?!"),
    _TERMINAL_PATTERNS["_NL"], _TERMINAL_PATTERNS["COMMENT"], r"[^ \t\f\r]")) + ")"


def word_re() -> re.Pattern[str]:
    """:data:`_WORD_PATTERN`, compiled (``re`` keeps it)."""
    import re

    return re.compile(_WORD_PATTERN)


#: Texts up to this long are scanned by :func:`_scan` in a process that has not loaded ``re``:
#: importing it (with enum, functools and collections) costs more than scanning tens of
#: kilobytes in Python, so a first small parse in a fresh process never loads it.
PYTHON_SCAN_MAX = 1 << 15
_BLANK = frozenset(" \t\f\r")
_DIGIT = frozenset("0123456789")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_PART = _NAME_START | _DIGIT
#: Characters that are a whole token wherever they stand (the most frequent, tried first).
_SINGLE = frozenset("+-/()^,;=[]\n")


def _python_scan(end: int) -> bool:
    """Whether to scan ``text[:end]`` with :func:`_scan` rather than :func:`word_re` (the
    same words either way; tests check it)."""
    return end <= PYTHON_SCAN_MAX and "re" not in sys.modules


def _number_end(text: str, i: int, end: int) -> int:
    """Where the NUMBER at ``text[i]`` (a digit, or "." before a digit) ends, as Lark's
    terminal (``_TERMINAL_PATTERNS["NUMBER"]``) matches it: digits, then "." and digits
    unless ".." follows, or "." and digits; then an exponent if digits follow ``e[+-]``."""
    digit = _DIGIT
    j = i + 1
    while j < end and text[j] in digit:
        j += 1
    if text[i] != "." and j < end and text[j] == "." and not (
            j + 1 < end and text[j + 1] == "."):
        j += 1
        while j < end and text[j] in digit:
            j += 1
    if j < end and text[j] in "eE":
        k = j + 1
        if k < end and text[k] in "+-":
            k += 1
        if k < end and text[k] in digit:
            j = k + 1
            while j < end and text[j] in digit:
                j += 1
    return j


def _scan(text: str, end: int) -> list[str]:
    """``word_re().findall(text, 0, end)``, in plain Python (``text[:end]`` ends in no
    blank): each token with the blanks before it, by the same alternatives in the same order
    (a name, "**", "..", a number, a new line, a comment, any other character)."""
    words: list[str] = []
    push = words.append
    blank, name_start, name_part, digit, single = _BLANK, _NAME_START, _NAME_PART, _DIGIT, _SINGLE
    i = 0
    while i < end:
        a = i
        c = text[i]
        while c in blank:  # a blank run is always followed by a token before ``end``
            i += 1
            c = text[i]
        j = i + 1
        if c in single:
            pass
        elif c in name_start:
            while j < end and text[j] in name_part:
                j += 1
        elif c in digit:
            j = _number_end(text, i, end)
        elif c == ".":
            if j < end and text[j] == ".":
                j += 1
            elif j < end and text[j] in digit:
                j = _number_end(text, i, end)
        elif c == "*":
            if j < end and text[j] == "*":
                j += 1
        elif c == "#":
            j = text.find("\n", j, end)
            if j < 0:
                j = end
        push(text[a:j])
        i = j
    return words
