"""Errors of the core. They stay values until the CLI turns them into an exit status."""

from __future__ import annotations

TYPE_CHECKING = False  # re is imported where a message is shown: a good parse needs none
if TYPE_CHECKING:
    import re


#: A word longer than this in a message is cut to its ends (a 1 MB identifier is not echoed).
MAX_ECHOED_WORD = 100
_LONG_WORD = r"[^\s'\"]{" + str(MAX_ECHOED_WORD + 1) + ",}"

#: The exit statuses, in one place: success, a job that ran but failed, bad input; Ctrl-C and
#: a reader that went away (``| head -1``) as a shell reports a program killed by SIGINT or
#: SIGPIPE (128 + the signal).
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE, EXIT_TERMINATED = 130, 141, 143

#: Characters never written raw to a terminal: C0 controls but newline and tab, DEL, C1
#: controls (0x9b is CSI on some terminals), the bidirectional overrides and isolates (they
#: reorder what is shown), the line and paragraph separators, and the lone surrogates that
#: stand for bytes of argv or file names that are not UTF-8.
_CONTROL = ("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
            "\u202a-\u202e\u2066-\u2069\ufeff\udc80-\udcff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """``text`` with every character that could move the cursor, retitle the window, reach
    the clipboard (OSC 52) or reorder a line shown as an escape (``\\x1b``, ``\\u202e``):
    anything echoed from the input goes through this before it reaches a terminal. Newlines
    and tabs stay."""
    import re  # on first use: a parse that succeeds needs no regular expression

    return re.sub(_CONTROL, _escaped, text)


def clip_words(text: str) -> str:
    """``text`` with every word over :data:`MAX_ECHOED_WORD` characters cut to
    ``first...last`` (the source line itself is shown as a window around the caret)."""
    import re

    half = (MAX_ECHOED_WORD - 4) // 2
    return re.sub(_LONG_WORD, lambda m: f"{m[0][:half]}...{m[0][-half:]}", text)


class AdcliError(Exception):
    """Bad input that the user can fix. ``exit_code`` 2, like a usage error."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, source: str | None = None, line: int = 0,
                 column: int = 0, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.hint = hint

    def context(self) -> str:
        """The offending source line with a caret under the column ('' if not located)."""
        if self.source is None or self.line <= 0:
            return ""
        lines = self.source.split("\n")
        if self.line > len(lines):
            return ""
        raw = lines[self.line - 1].replace("\t", " ").rstrip("\r")
        col = max(self.column, 1)
        # Escapes are wider than the characters they stand for: move the caret with them.
        col = len(escape_control(raw[:col - 1])) + 1
        text = escape_control(raw)
        # Keep very long lines readable: show a window around the column.
        start = 0
        if len(text) > 100:
            start = max(0, min(col - 50, len(text) - 100))
            text = ("..." if start else "") + text[start:start + 100] + (
                "..." if start + 100 < len(text) else "")
            col = col - start + (3 if start else 0)
        return f"  {text}\n  {' ' * (col - 1)}^"

    def render(self) -> str:
        """The full message as the CLI prints it after 'Error: '."""
        where = f" (line {self.line}, column {self.column})" if self.line > 0 else ""
        # a line break echoed from the input (--sep, a file name, a --from name) is shown as
        # \n: the message stays one line, as is the hint (the source line is the context's)
        parts = [escape_control(clip_words(self.message)).replace("\n", "\\n") + where]
        ctx = self.context()
        if ctx:
            parts.append(ctx)
        if self.hint:
            parts.append(escape_control(clip_words(self.hint)).replace("\n", "\\n"))
        return "\n".join(parts)


class ParseError(AdcliError):
    """The text is not a valid adcli program."""


class NameResolutionError(AdcliError):
    """Unknown function, wrong arity, unbound variable, bad let binding."""


class PointError(AdcliError):
    """A malformed ``--at``/``--from`` assignment or a missing value."""


class Terminated(BaseException):  # noqa: N818 - a signal, like KeyboardInterrupt
    """SIGTERM while an output file is being written (:mod:`adcli.io.atomic`): unwinds like
    Ctrl-C, so the temporary is removed, and exits 143."""


class OutputError(AdcliError):
    """An output (stdout, ``-o``, ``--trace``, ``--plot``) that cannot be written: the job ran
    but failed, so exit status 1."""

    exit_code = EXIT_FAILED

    def __init__(self, path: str | None, err: OSError) -> None:
        reason = err.strerror or str(err)
        where = f"'{path}': " if path else ""
        super().__init__(f"cannot write output: {where}{reason}")
