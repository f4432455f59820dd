"""This process's id, kept current across forks without a system call per
read.

The revocation copies ask on every protected request whether they were
forked since they started (a child must start its own listener thread and
connection), and ``os.getpid()`` is a real system call: glibc stopped caching
it.  :func:`os.register_at_fork` runs in the child of every fork Python makes
(``os.fork``, multiprocessing, gunicorn's workers), so reading :data:`pid`
answers the same question for the price of an attribute.
"""

from __future__ import annotations

import os

#: ``os.getpid()`` as of the last fork (or import).
pid = os.getpid()


def _forked() -> None:
    global pid
    pid = os.getpid()


os.register_at_fork(after_in_child=_forked)
