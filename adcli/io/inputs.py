"""Bounded reads: every byte adcli reads from a path or stdin goes through here.

A size from ``stat`` says nothing for a device or a pipe (``/dev/zero`` is 0 bytes and never
ends), so every read asks for at most ``limit + 1`` bytes: one byte past the limit proves the
input is too large without holding more than the limit in memory.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import BinaryIO

from ..errors import AdcliError

_CHUNK = 1 << 20


class InputTooLarge(AdcliError):
    """An input over its size limit (the message names the option that raises it)."""


def read_limited(fh: BinaryIO, limit: int | None) -> bytes:
    """At most ``limit + 1`` bytes from ``fh`` (all of it when ``limit`` is None), in chunks
    so that a pipe or device is never asked for more than a megabyte at a time."""
    if limit is None:
        return fh.read()
    parts: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = fh.read(min(_CHUNK, left))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def open_binary(path: str, what: str,
                error: type[AdcliError] = AdcliError) -> tuple[BinaryIO, os.stat_result]:
    """Open ``path`` for reading, with its ``fstat``; a directory or a missing file is an
    ``error`` naming ``what`` (e.g. "data file 'd.csv'")."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        raise error(f"cannot read {what}: it does not exist") from None
    except IsADirectoryError:
        raise error(f"cannot read {what}: it is a directory") from None
    except OSError as err:
        raise error(f"cannot read {what}: {err.strerror or err}") from None
    try:
        st = os.fstat(fh.fileno())
    except OSError as err:
        fh.close()
        raise error(f"cannot read {what}: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        fh.close()
        raise error(f"cannot read {what}: it is a directory")
    return fh, st


def too_large(what: str, limit: int, option: str, size: int | None = None) -> InputTooLarge:
    """The error for an input over ``limit`` bytes; ``option`` raises the limit."""
    shown = f"{size:,} bytes, " if size is not None else ""
    return InputTooLarge(f"{what} is {shown}over the limit of {limit:,} bytes",
                         hint=f"raise the limit with {option} BYTES (suffixes K, M, G allowed)")


def read_bounded(path: str | None, limit: int | None, what: str, option: str) -> bytes:
    """The bytes of ``path`` (stdin when None), refusing anything over ``limit`` bytes; a
    regular file over the limit is refused from its size before a byte is read."""
    if path is None:
        stdin = getattr(sys.stdin, "buffer", None)  # None: started with stdin closed (<&-)
        if stdin is None:
            raise AdcliError(f"cannot read {what}: it is closed")
        try:
            data = read_limited(stdin, limit)
        except OSError as err:
            raise AdcliError(f"cannot read {what}: {err.strerror or err}") from None
    else:
        fh, st = open_binary(path, what)
        with fh:
            if limit is not None and stat.S_ISREG(st.st_mode) and st.st_size > limit:
                raise too_large(what, limit, option, st.st_size)
            try:
                data = read_limited(fh, limit)
            except OSError as err:
                raise AdcliError(f"cannot read {what}: {err.strerror or err}") from None
    if limit is not None and len(data) > limit:
        raise too_large(what, limit, option)
    return data
