"""Output files written whole or not at all.

Every file adcli writes (``-o``, ``--trace``, ``--plot``, ``graph -o``) goes to a temporary
file in the target's directory, is flushed and fsynced, and is renamed over the target only
when the command's output is complete. On any failure (an exception, Ctrl-C, SIGTERM, a full
disk, EFBIG under ``ulimit -f``) the temporary is removed and the old file, if any, is left
byte-identical. Renaming replaces a target that is a symbolic link (the link, not the file it
points to). A target that exists and is not a regular file (``/dev/stdout``, a FIFO) cannot be
replaced and is written in place, as a shell redirection would.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import stat
import threading
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..errors import AdcliError, OutputError, Terminated


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


class _SigtermRaises:
    """SIGTERM becomes :class:`Terminated` while a temporary exists, so that it is removed
    (the default action would kill the process and leave it behind). Main thread only: that
    is where Python runs signal handlers."""

    def __init__(self) -> None:
        self.previous: Any = None
        self.installed = False

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            self.previous = signal.signal(signal.SIGTERM, _terminate)
        except (ValueError, OSError):  # an interpreter without signals
            return
        self.installed = True

    def restore(self) -> None:
        if self.installed:
            self.installed = False
            signal.signal(signal.SIGTERM, self.previous)


class AtomicFile:
    """A file object on a temporary beside ``path``; :meth:`commit` renames it over ``path``,
    :meth:`discard` removes it. Not a context manager on purpose: callers that keep it open
    across a run (``--trace``) decide when the output is complete; use :func:`atomic_output`
    for a plain ``with``."""

    def __init__(self, path: str, mode: str = "w", *, encoding: str | None = "utf-8",
                 newline: str | None = "") -> None:
        self.path = path
        self.tmp: str | None = None
        self._signals = _SigtermRaises()
        binary = "b" in mode
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as err:
            raise OutputError(path, err) from None
        try:
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
            if st is not None and not stat.S_ISREG(st.st_mode):
                # /dev/stdout, /dev/null, a FIFO: nothing to replace, written in place.
                self.fh: IO[Any] = open(path, "wb" if binary else "w",
                                        **({} if binary else {"encoding": encoding,
                                                              "newline": newline}))
                return
            if st is not None and not os.access(path, os.W_OK):
                # A read-only file stays read-only, as it would for `> file`.
                raise OSError(errno.EACCES, os.strerror(errno.EACCES))
            self._signals.install()
            directory, name = os.path.split(path)
            # A name of up to 255 bytes must still leave room for the marks around it.
            tmp = os.path.join(directory, f".{name[:160]}.{secrets.token_hex(4)}.adcli-tmp")
            # 0o666 less the umask, as open() would create the target; O_EXCL: never follow
            # or reuse a file planted under that name.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_CLOEXEC", 0), 0o666)
            self.tmp = tmp
            if st is not None:
                os.chmod(fd, stat.S_IMODE(st.st_mode))
            self.fh = os.fdopen(fd, "wb" if binary else "w",
                                **({} if binary else {"encoding": encoding,
                                                      "newline": newline}))
        except OSError as err:
            self.discard()
            raise OutputError(path, err) from None
        except BaseException:
            self.discard()
            raise

    def write(self, data: Any) -> int:
        """Write through to the file; an OSError names the target."""
        try:
            return self.fh.write(data)
        except OSError as err:
            raise _output_error(self.path, err) from None

    def flush(self) -> None:
        try:
            self.fh.flush()
        except OSError as err:
            raise _output_error(self.path, err) from None

    def commit(self) -> None:
        """The output is complete: flush, fsync and rename it over the target."""
        try:
            self.fh.flush()
            if self.tmp is not None:
                os.fsync(self.fh.fileno())
            self.fh.close()
            if self.tmp is not None:
                os.replace(self.tmp, self.path)
                self.tmp = None
                _fsync_directory(self.path)
        except OSError as err:
            self.discard()
            raise _output_error(self.path, err) from None
        except BaseException:  # Ctrl-C or SIGTERM inside fsync: still no temporary left
            self.discard()
            raise
        self._restore()

    def discard(self) -> None:
        """Give up: remove the temporary; the target keeps its old content."""
        fh = getattr(self, "fh", None)
        try:
            if fh is not None:
                # A signal that interrupted a write can leave the buffer mid-flush, and closing
                # it then raises more than OSError (a reentrant call): the file is dropped
                # anyway, so whatever close says, the temporary goes.
                with contextlib.suppress(Exception):
                    fh.close()
        finally:
            if self.tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self.tmp)
                self.tmp = None
            self._restore()

    def _restore(self) -> None:
        self._signals.restore()


def _output_error(path: str, err: OSError) -> OSError | OutputError:
    """The error to raise: a broken pipe stays an OSError (the CLI exits 141 quietly for it),
    anything else names the file."""
    return err if err.errno == errno.EPIPE else OutputError(path, err)


def _fsync_directory(path: str) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "w", *, encoding: str | None = "utf-8",
                  newline: str | None = "") -> Iterator[AtomicFile]:
    """``with atomic_output(path) as out: out.write(...)``: committed when the block ends
    normally, discarded on any exception (KeyboardInterrupt and SIGTERM included)."""
    out = AtomicFile(path, mode, encoding=encoding, newline=newline)
    try:
        yield out
    except BaseException:
        out.discard()
        raise
    out.commit()


def _identity(path: str, follow: bool) -> tuple[int, int] | None:
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def input_file(expr: str | None) -> str | None:
    """The file an ``EXPR`` argument reads (``@FILE``, ``-`` for stdin), else None."""
    if expr == "-":
        return "-"
    return expr[1:] if expr and expr.startswith("@") and len(expr) > 1 else None


def check_outputs(outputs: Iterable[tuple[str, str | None]],
                  inputs: Iterable[str | None]) -> None:
    """Before the run: refuse an output file that is one of the inputs (the same file, by
    device and inode, whatever the names or links: ``--trace d.csv`` would replace the data)
    or that is a directory or in a directory that does not exist (exit 1, as any output that
    cannot be written). ``outputs`` are (option, path) pairs; ``-`` as an input stands for
    standard input, compared when it is a regular file."""
    seen: dict[tuple[int, int], str] = {}
    for path in inputs:
        if path is None:
            continue
        if path == "-":
            try:
                st = os.fstat(0)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                seen[(st.st_dev, st.st_ino)] = "standard input"
            continue
        ident = _identity(path, follow=True)
        if ident is not None:
            seen[ident] = f"the input '{path}'"
    for option, path in outputs:
        if path is None:
            continue
        for ident in {_identity(path, follow=True), _identity(path, follow=False)} - {None}:
            if ident in seen:
                raise AdcliError(f"{option} '{path}' is {seen[ident]}: writing it would "
                                 "destroy it; choose another output file")
        if path.endswith(os.sep) or os.path.isdir(path):
            raise OutputError(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
        directory = os.path.dirname(path) or "."
        if not os.path.exists(path) and not os.path.isdir(directory):
            raise OutputError(path, FileNotFoundError(
                errno.ENOENT, f"no directory '{directory}'"))
