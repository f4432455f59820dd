"""Work done after the response: the mail flows' lookups and deliveries.

:func:`defer` hands a job to one worker thread per process, which runs it
inside an app context of the app that deferred it.  The request never
waits for it: its answer and timing are the same whatever the job finds
(an address with an account or not) and however long the mail server
takes.  An exception in a job is logged, never shown to a client.

Tests (and an app's own) wait for the jobs deferred so far with
:func:`wait_idle` (``flask_tokenauth.testing.wait_for_mail``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from flask import current_app

logger = logging.getLogger("flask_tokenauth")

_Job = tuple[Any, Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_lock = threading.Lock()
_queue: queue.Queue[_Job] = queue.Queue()
_worker: threading.Thread | None = None
_pid = 0


def _run() -> None:
    while True:
        app, job, args, kwargs = _queue.get()
        try:
            with app.app_context():
                job(*args, **kwargs)
        except Exception:
            logger.exception("tokenauth background job %s failed", job.__qualname__)
        finally:
            _queue.task_done()


def _ensure_worker() -> None:
    global _worker, _pid, _queue
    if _worker is not None and _pid == os.getpid():
        return
    with _lock:
        if _worker is not None and _pid == os.getpid():
            return
        if _pid != os.getpid():
            # A forked worker (gunicorn): the parent's thread is not here.
            _queue = queue.Queue()
        _pid = os.getpid()
        _worker = threading.Thread(target=_run, name="tokenauth-outbox", daemon=True)
        _worker.start()


def defer(job: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``job(*args, **kwargs)`` after the response, in an app context of
    the current app."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _ensure_worker()
    _queue.put((app, job, args, kwargs))


def wait_idle() -> None:
    """Return once every job deferred so far in this process has run."""
    _queue.join()
