"""A scheduler's address checked before ``distributed.Client`` sees it.

The client trusts its peer: an address without a port is a traceback, a port that accepts
and never answers (a dashboard) can hold it for minutes, and a service that greets with its
own bytes (SSH, SMTP, ...) has the greeting read as the length of a Dask message, which is
then allocated ("out of memory"). Here the address is parsed, and for ``tcp://`` the peer's
first message is read with a bounded wait and checked to be the frame header a Dask
scheduler sends first on every connection (its handshake), before the client connects.
"""

from __future__ import annotations

import socket
import struct
import time

from ..errors import AdcliError, escape_control

#: Seconds to wait for a scheduler's handshake (Dask config ``adcli.connect-timeout``,
#: environment ``DASK_ADCLI__CONNECT_TIMEOUT``).
CONNECT_TIMEOUT = 10.0

#: A Dask handshake is a few hundred bytes; a first message announcing more is not one.
HANDSHAKE_BYTES = 1 << 16

#: Characters of a host name or IPv4 address, and of a bracketed IPv6 address (with a zone).
_HOST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
_IPV6 = _HOST | {":", "%"}

_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")

_FORMS = "local:N, threads, synchronous, or a scheduler's HOST:PORT or tcp://HOST:PORT"


class NotAScheduler(AdcliError):
    """The address is malformed, or what answers there is not a Dask scheduler (exit 2)."""


def connect_timeout() -> float:
    """:data:`CONNECT_TIMEOUT`, or the Dask config's ``adcli.connect-timeout``."""
    import dask

    value = dask.config.get("adcli.connect-timeout", CONNECT_TIMEOUT)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0 < seconds <= 3600:
        raise NotAScheduler(f"adcli.connect-timeout (DASK_ADCLI__CONNECT_TIMEOUT) is "
                            f"'{escape_control(str(value))}', not a number of seconds from "
                            "0 to 3600")
    return seconds


def parse(spec: str, origin: str = "--scheduler") -> tuple[str, str, int]:
    """(scheme, host, port) of a scheduler address (``HOST:PORT`` is ``tcp://``), or
    :class:`NotAScheduler` naming ``origin`` and the address."""
    shown = f"{origin} '{escape_control(spec)}'"
    scheme, sep, loc = spec.partition("://")
    if not sep:
        scheme, loc = "tcp", spec
    if scheme not in _SCHEMES:
        raise NotAScheduler(f"{shown}: unknown scheme '{escape_control(scheme)}' (use {_FORMS})")
    if loc.startswith("["):  # [IPv6]:port
        host, close, rest = loc[1:].partition("]")
        port = rest[1:] if close and rest.startswith(":") else ""
    else:
        host, _, port = loc.rpartition(":")
    allowed = _IPV6 if loc.startswith("[") else _HOST
    if not host or not set(host) <= allowed:
        raise NotAScheduler(f"{shown} is not a scheduler address (use {_FORMS})")
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise NotAScheduler(f"{shown} has no port from 1 to 65535 (use {_FORMS})")
    return scheme, host, int(port)


def check(spec: str, origin: str = "--scheduler") -> None:
    """Refuse (:class:`NotAScheduler`) an address that is malformed or whose peer does not
    greet as a Dask scheduler within :func:`connect_timeout` seconds; a refused or
    unresolvable address is an OSError, as from the client."""
    scheme, host, port = parse(spec, origin)
    if scheme != "tcp":  # TLS, websockets and UCX speak first from the client's side
        return
    timeout = connect_timeout()
    shown = f"{origin} '{escape_control(spec)}'"
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as conn:
        try:
            head = _read(conn, 8, deadline)
            (total,) = struct.unpack("<Q", head)
            if not 16 <= total <= HANDSHAKE_BYTES:
                raise ValueError
            body = _read(conn, total, deadline)
            (frames,) = struct.unpack_from("<Q", body)
            if not 1 <= frames <= 64 or 8 * (1 + frames) > total:
                raise ValueError
            lengths = struct.unpack_from(f"<{frames}Q", body, 8)
            if 8 * (1 + frames) + sum(lengths) < total:
                raise ValueError
        except TimeoutError:
            raise NotAScheduler(f"{shown}: no Dask scheduler answered within {timeout:g} s "
                                "(is it the dashboard's port? a scheduler listens on 8786 "
                                "by default)") from None
        except (ValueError, struct.error, EOFError):
            raise NotAScheduler(f"{shown}: what answers there is not a Dask "
                                "scheduler") from None


def _read(conn: socket.socket, count: int, deadline: float) -> bytes:
    """Exactly ``count`` bytes before ``deadline`` (TimeoutError), or EOFError if the
    peer closes first."""
    chunks = []
    while count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        conn.settimeout(left)
        try:
            chunk = conn.recv(min(count, 1 << 16))
        except TimeoutError:
            raise TimeoutError from None
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)
