"""Side jobs on a second core that the calling thread takes back when the side thread has not started them.

``analyse`` follows one chain of dependent stages (separation → relief maps → pits) and hands independent work to
one worker thread (pigment metrics, areal parameters, a band's spread). When the chain needs a side result whose
job is still queued behind others, it runs that job itself instead of waiting. Every value is the one computed in
sequence.
"""
from __future__ import annotations

import functools
import threading
from concurrent.futures import Executor


class Deferred:
    """A job handed to ``executor`` (or, without one, run when its result is first asked for).

    Examples
    --------
    >>> Deferred(None, pow, 2, 10).result()
    1024
    """

    __slots__ = ("_call", "_future", "_value", "_done", "_lock")

    def __init__(self, executor: Executor | None, fn, /, *args, **kwargs):
        self._call = functools.partial(fn, *args, **kwargs)
        self._future = executor.submit(self._call) if executor is not None else None
        self._done = False
        self._value = None
        self._lock = threading.Lock()

    def result(self):
        """The job's value: waited for if it is running or done, computed here if it has not started."""
        with self._lock:
            if not self._done:
                if self._future is None or self._future.cancel():
                    self._value = self._call()
                else:
                    self._value = self._future.result()
                self._done, self._call, self._future = True, None, None
            return self._value
