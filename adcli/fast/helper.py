"""Helper threads for the numpy engines, shared by every caller; no caller waits for one that
has not started its task.

numpy releases the GIL inside its loops, so a second core can run one part of a sweep while
the caller runs another. On a shared machine that core may be busy: a thread that nobody
schedules must not hold the work up. So a :class:`Task` is *claimed* by whoever reaches it
first: the helper thread if it is running, else the caller itself when it needs the result
(then it simply runs it, as if there were no thread). Work split this way costs one queue
put and a lock per task, and its results never depend on which thread ran what.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

_queue: queue.SimpleQueue = queue.SimpleQueue()
_threads: list[threading.Thread] = []
_start_lock = threading.Lock()


class Task:
    """``fn(*args)``, run once by whichever thread claims it first (see the module). On a
    helper thread numpy's floating-point errors are ignored; a caller that may run its own
    task sets that itself (generated sweeps run under ``errstate(all="ignore")``)."""

    __slots__ = ("fn", "args", "claim", "done", "result", "error")

    def __init__(self, fn: Callable, args: tuple) -> None:
        self.fn, self.args = fn, args
        self.claim = threading.Lock()
        self.done = threading.Lock()
        self.done.acquire()  # released once the result is there
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> bool:
        """Run the task if nobody has claimed it yet; whether this call ran it."""
        if not self.claim.acquire(blocking=False):
            return False
        try:
            self.result = self.fn(*self.args)
        except BaseException as exc:  # handed to the caller by join()
            self.error = exc
        self.done.release()
        return True

    def join(self) -> Any:
        """The result: run here if the helper has not started it, else wait for it."""
        if not self.run():
            self.done.acquire()
            self.done.release()
        if self.error is not None:
            raise self.error
        return self.result


def _serve(q: queue.SimpleQueue) -> None:
    np.seterr(all="ignore")  # numpy's error state is per thread: set once, for every task
    while True:
        q.get().run()


def _after_fork() -> None:
    """A forked child has no helper threads: start afresh (tasks already offered are run by
    their callers, who claim them)."""
    global _queue
    _queue = queue.SimpleQueue()
    _threads.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def submit(fn: Callable, *args: Any, helpers: int = 1) -> Task:
    """A :class:`Task` for ``fn(*args)``, offered to the helper threads; at least ``helpers``
    of them are started on first use (daemons: they never keep the process alive)."""
    if len(_threads) < helpers:
        with _start_lock:
            while len(_threads) < helpers:
                thread = threading.Thread(target=_serve, args=(_queue,), daemon=True,
                                          name=f"adcli-helper-{len(_threads)}")
                thread.start()
                _threads.append(thread)
    task = Task(fn, args)
    _queue.put(task)
    return task

