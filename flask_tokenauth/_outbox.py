"""Work done after the response: the mail flows' lookups and deliveries.

:func:`defer` hands a job to one worker thread per process, which runs it
inside an app context of the app that deferred it.  The request never
waits for it: its answer and timing are the same whatever the job finds
(an address with an account or not) and however long the mail server
takes.  An exception in a job is logged, never shown to a client.

Bounded: at most :data:`MAX_PENDING` jobs wait at a time.  A mail server
that is down makes each delivery fail after ``TOKENAUTH_MAIL_TIMEOUT``;
requests arriving faster than that fill the queue, and a job beyond the
bound is dropped (logged, and :func:`defer` answers ``False`` so a mail
job can send ``mail_failed``) instead of growing memory without limit.

Fork-safe: a process forked from one that has used the outbox (gunicorn's
workers after a ``--preload``) starts with an empty queue and starts its
own thread at its first job; the parent's thread does not exist there.

Tests (and an app's own) wait for the jobs deferred so far with
:func:`wait_idle` (``flask_tokenauth.testing.wait_for_mail``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app

logger = logging.getLogger("flask_tokenauth")

#: Jobs waiting at most, per process (each a few KB: a rendered mail).
MAX_PENDING = 1000

_Job = tuple[Flask, Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _Outbox:
    """The queue and its thread; one per process."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.jobs: deque[_Job] = deque()
        #: Jobs deferred and not finished, by app (running ones included).
        self.pending: dict[Flask, int] = {}
        self.thread: threading.Thread | None = None

    def put(self, job: _Job) -> bool:
        with self.changed:
            if len(self.jobs) >= MAX_PENDING:
                return False
            self.jobs.append(job)
            self.pending[job[0]] = self.pending.get(job[0], 0) + 1
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self.run, name="tokenauth-outbox", daemon=True
                )
                self.thread.start()
            self.changed.notify_all()
            return True

    def run(self) -> None:
        while True:
            with self.changed:
                while not self.jobs:
                    self.changed.wait()
                app, job, args, kwargs = self.jobs.popleft()
            try:
                with app.app_context():
                    job(*args, **kwargs)
            except Exception:
                logger.exception("tokenauth background job %s failed", job.__qualname__)
            finally:
                with self.changed:
                    self.pending[app] -= 1
                    if not self.pending[app]:
                        del self.pending[app]
                    self.changed.notify_all()

    def wait(self, app: Flask | None, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while self.pending if app is None else app in self.pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.changed.wait(left)
            return True


_outbox = _Outbox()


def _after_fork() -> None:
    # The parent's thread, lock state and jobs are the parent's.
    global _outbox
    _outbox = _Outbox()


os.register_at_fork(after_in_child=_after_fork)


def defer(job: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Run ``job(*args, **kwargs)`` after the response, in an app context of
    the current app.  ``False``: the outbox is full and the job was dropped
    (logged)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if _outbox.put((app, job, args, kwargs)):
        return True
    logger.error(
        "tokenauth outbox full (%d jobs waiting: is the mail server down?);"
        " job %s dropped",
        MAX_PENDING,
        job.__qualname__,
    )
    return False


def wait_idle(app: Flask | None = None, timeout: float | None = None) -> bool:
    """Wait until every job deferred so far in this process (by ``app``, or
    by any app) has run, including the jobs those jobs deferred.
    ``False``: ``timeout`` seconds passed first."""
    return _outbox.wait(app, timeout)
