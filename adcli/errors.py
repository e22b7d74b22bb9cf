"""Errors of the core. They stay values until the CLI turns them into an exit status."""

from __future__ import annotations

import re

#: A word longer than this in a message is cut to its ends (a 1 MB identifier is not echoed).
MAX_ECHOED_WORD = 100
_LONG_WORD = re.compile(r"[^\s'\"]{" + str(MAX_ECHOED_WORD + 1) + ",}")

#: The exit statuses, in one place: success, a job that ran but failed, bad input; Ctrl-C and
#: a reader that went away (``| head -1``) as a shell reports a program killed by SIGINT or
#: SIGPIPE (128 + the signal).
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141


def clip_words(text: str) -> str:
    """``text`` with every word over :data:`MAX_ECHOED_WORD` characters cut to
    ``first...last`` (the source line itself is shown as a window around the caret)."""
    half = (MAX_ECHOED_WORD - 4) // 2
    return _LONG_WORD.sub(lambda m: f"{m[0][:half]}...{m[0][-half:]}", text)


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
        text = lines[self.line - 1].replace("\t", " ").rstrip("\r")
        col = max(self.column, 1)
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
        parts = [clip_words(self.message) + where]
        ctx = self.context()
        if ctx:
            parts.append(ctx)
        if self.hint:
            parts.append(clip_words(self.hint))
        return "\n".join(parts)


class ParseError(AdcliError):
    """The text is not a valid adcli program."""


class NameResolutionError(AdcliError):
    """Unknown function, wrong arity, unbound variable, bad let binding."""


class PointError(AdcliError):
    """A malformed ``--at``/``--from`` assignment or a missing value."""


class OutputError(AdcliError):
    """An output (stdout, ``-o``, ``--trace``, ``--plot``) that cannot be written: the job ran
    but failed, so exit status 1."""

    exit_code = EXIT_FAILED

    def __init__(self, path: str | None, err: OSError) -> None:
        reason = err.strerror or str(err)
        super().__init__(f"cannot write output: {f'{path!r}: ' if path else ''}{reason}")
