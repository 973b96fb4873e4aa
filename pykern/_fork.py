"""fork() and pykern's host kernels: a fork waits until no thread is inside one.

OpenBLAS (NumPy's BLAS) shuts its thread pool down in a pthread_atfork handler. If another thread
is inside a threaded BLAS call at that moment, the call's work is lost and the caller waits for it
forever: plain ``a @ a`` on one thread while another forks wedges the process within a few forks
(OpenBLAS 0.3.31). pykern's batch split made it likelier still, as its worker threads sit in BLAS
most of the time. Data loaders fork (torch's DataLoader workers, multiprocessing pools), so every
host kernel that pykern runs passes through :data:`FORK_GATE`: ``os.fork()`` waits (in a Python
before-fork handler, which runs before the C library's) until no thread is inside one, and no
thread enters one until the fork is done. The child starts with a fresh gate. Entries nest (the
batch split runs inside a kernel); a thread that forks from inside a kernel does not wait for
itself.
"""
from __future__ import annotations

import os
import threading

# Python runs before-fork handlers in reverse order of registration, and ThreadPoolExecutor's
# takes a lock that the batch split's submit() needs: register it first, so that the gate's
# handler runs before it (else a fork holding that lock would wait for a split waiting for it).
import concurrent.futures.thread  # noqa: F401,E402  (imported for its fork handler)


class ForkGate:
    """Threads enter it around host kernels; fork() waits at it until none is inside."""

    def __init__(self):
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=self._before_fork, after_in_parent=self._after_in_parent,
                                after_in_child=self._reset)

    def _reset(self):
        # In a child, the one thread is the one that forked, inside a kernel or not.
        depth = getattr(getattr(self, "_depth", None), "n", 0)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a kernel left, or a fork finished
        self._inside = 1 if depth else 0  # threads now inside a host kernel
        self._forking = False
        self._depth = threading.local()  # .n: how deep this thread is (a split nests in a kernel)
        self._depth.n = depth

    def __enter__(self):
        depth = getattr(self._depth, "n", 0)
        if not depth:  # only the outermost entry waits: an inner one would wait for itself
            with self._lock:
                while self._forking:
                    self._changed.wait()
                self._inside += 1
        self._depth.n = depth + 1

    def __exit__(self, *exc):
        self._depth.n -= 1
        if not self._depth.n:
            with self._lock:
                self._inside -= 1
                if self._forking:
                    self._changed.notify_all()

    def _before_fork(self):
        own = 1 if getattr(self._depth, "n", 0) else 0  # a kernel that forks cannot wait for itself
        self._lock.acquire()  # held across the fork: nobody enters or leaves meanwhile
        self._forking = True
        while self._inside > own:
            self._changed.wait()

    def _after_in_parent(self):
        self._forking = False
        self._changed.notify_all()
        self._lock.release()


FORK_GATE = ForkGate()
