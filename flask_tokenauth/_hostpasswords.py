"""The password hashes a host's user table already holds: which formats
``verify="auto"`` reads, and what an unknown login is checked against.

Formats read by ``"auto"``, told apart on sight:

* bcrypt (``$2a$``, ``$2b$``, ``$2y$``, and our ``$bcrypt-sha256$`` for
  long passwords), as Flask-Bcrypt, passlib's ``bcrypt`` and Node's
  bcryptjs write them, ``str`` or ``bytes`` (Flask-Bcrypt's ``LargeBinary``
  column hands us ``bytes``);
* werkzeug's ``pbkdf2:`` and ``scrypt:`` (Flask's tutorial, Flask-Login
  apps);
* with passlib installed, passlib's ``pbkdf2_sha256``/``_sha512``/``_sha1``,
  ``sha256_crypt``, ``sha512_crypt``, ``scrypt``, and ``argon2`` (with
  argon2-cffi installed too).

Anything else is a mismatch, logged once per store at WARNING with the
option to set: silence would leave a host wondering why every login fails.

Timing: a wrong password costs one check of the user's own hash, so an
unknown login must cost one check of a hash *of the same scheme and cost*,
or one request tells the two apart (bcrypt-12 users against a fixed scrypt
dummy: 243 ms against 103 ms).  No dummy made by us can know the host's
schemes, so the dummy is one of the host's own hashes: :class:`DummyHashes`
keeps one stored hash per scheme-and-cost seen (sampled from the table at
the first login, then every hash a login checks) with the shortest time a
check of it took, and an unknown login is checked against the costliest.
The answer of that check is thrown away.  Users whose hash is of a cheaper
scheme than the costliest stay told apart from unknown logins (as they
are from each other) until a login rehashes them.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from ._hostkeys import require_callable
from ._passwords import (
    PREHASH_PREFIX,
    dummy_hash,
    hash_password,
    hash_rounds,
    needs_rehash,
    verify_password,
)
from ._state import get_state
from .errors import ConfigurationError

logger = logging.getLogger("flask_tokenauth")

#: The bcrypt hashes :mod:`._passwords` reads (passlib's own
#: ``$bcrypt-sha256$v=2,...`` is another format, not ours).
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$", PREHASH_PREFIX + "$2")
#: The schemes of werkzeug's ``generate_password_hash``.
WERKZEUG_PREFIXES = ("scrypt:", "pbkdf2:")
#: passlib's schemes that ``"auto"`` reads besides the two above.  Not
#: ``bcrypt``/``bcrypt_sha256``: passlib 1.7's bcrypt backend fails with
#: bcrypt 5, and plain bcrypt hashes are read above anyway.
PASSLIB_SCHEMES = (
    "pbkdf2_sha256",
    "pbkdf2_sha512",
    "pbkdf2_sha1",
    "sha256_crypt",
    "sha512_crypt",
    "scrypt",
    "argon2",
)
#: A field of a modular-crypt hash that holds cost parameters, not salt:
#: ``12`` (bcrypt, pbkdf2), ``rounds=535000``, ``v=19``, ``m=65536,t=3,p=4``.
_PARAMS = re.compile(r"[0-9]+|[a-z]+=[0-9a-z=,]*")
#: What of an unknown hash the warning may show: a scheme's name only, never
#: more (the column might hold plain passwords).
_SCHEME_NAME = re.compile(r"\$[A-Za-z0-9_.-]{1,24}\$|[A-Za-z0-9_.-]{1,24}[:$]")
#: The password the start-up sample checks (a mismatch by design).
_SAMPLE_PASSWORD = "flask_tokenauth timing sample"
#: How many schemes a store remembers (a table holds a few).
_MAX_SCHEMES = 32


def as_text(value: object) -> str | None:
    """A stored hash as text: ``str`` as it is, ``bytes``/``memoryview``
    (a ``LargeBinary`` column) decoded; ``None`` for anything else (no
    password: NULL) or bytes that are no hash."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    return None


@functools.cache
def passlib_context() -> Any | None:
    """A passlib ``CryptContext`` of :data:`PASSLIB_SCHEMES`, or ``None``
    without passlib."""
    try:
        with warnings.catch_warnings():
            # passlib 1.7 imports the stdlib's deprecated ``crypt`` module.
            warnings.simplefilter("ignore", DeprecationWarning)
            from passlib.context import CryptContext  # type: ignore[import-untyped]
    except ImportError:
        return None
    return CryptContext(schemes=list(PASSLIB_SCHEMES))


def family(stored: str, verify: str) -> str | None:
    """``"bcrypt"``, ``"werkzeug"`` or ``"passlib"``: who reads ``stored``
    under the ``verify`` option (``"auto"``, ``"bcrypt"``, ``"werkzeug"``);
    ``None`` for a format it does not read."""
    if verify in {"auto", "bcrypt"} and stored.startswith(BCRYPT_PREFIXES):
        return "bcrypt"
    if verify in {"auto", "werkzeug"} and stored.startswith(WERKZEUG_PREFIXES):
        return "werkzeug"
    if verify == "auto" and stored.startswith("$"):
        context = passlib_context()
        if context is not None and context.identify(stored) is not None:
            return "passlib"
    return None


def check(stored: str, password: str, *, verify: Any, rounds: int) -> bool | None:
    """Whether ``password`` matches ``stored``; ``None`` if ``verify`` (an
    option name or a passlib context) does not read its format."""
    if not isinstance(verify, str):  # the host's passlib CryptContext
        identify = getattr(verify, "identify", None)  # a look-alike may lack it
        if identify is not None and not identify(stored):  # None or False
            return None
        return bool(verify.verify(password, stored))
    kind = family(stored, verify)
    if kind == "bcrypt":
        return verify_password(password, stored, rounds=rounds)
    if kind == "werkzeug":
        return check_password_hash(stored, password)
    if kind == "passlib":
        context = passlib_context()
        assert context is not None
        try:
            return bool(context.verify(password, stored))
        except RuntimeError:  # passlib's MissingBackendError (argon2-cffi)
            return None
    return None


def scheme_of(stored: str) -> str:
    """The scheme and cost of ``stored``: two hashes of one key cost the same
    to check (``bcrypt$12``, ``pbkdf2:sha256:600000``, ``scrypt:32768:8:1``,
    ``$pbkdf2-sha256$29000``, ``$5$rounds=535000``,
    ``$argon2id$v=19$m=65536,t=3,p=4``)."""
    rounds = hash_rounds(stored)
    if rounds is not None:
        return f"bcrypt${rounds}"
    if stored.startswith("$bcrypt-sha256$"):  # passlib's: $...$v=2,t=2b,r=12$
        return "$bcrypt-sha256$" + stored.split("$")[2]
    if not stored.startswith("$"):
        return stored.split("$", 1)[0]  # werkzeug's method:cost:params
    fields = stored.split("$")[1:]
    params = [field for field in fields[1:3] if _PARAMS.fullmatch(field)]
    return "$".join(["", fields[0], *params])


def scheme_name(stored: str) -> str:
    """The name of ``stored``'s scheme for a log line, without its salt or
    anything else of the value."""
    found = _SCHEME_NAME.match(stored)
    return repr(found.group(0)) if found else "no scheme prefix"


class DummyHashes:
    """The hash an unknown login is checked against: the costliest of the
    host's own hashes seen so far, one kept per scheme and cost.

    A scheme's cost is the shortest time a check of it took (the least
    disturbed by load).  Thread-safe: logins of several threads record.
    """

    #: The clock the checks are timed with (a test may set its own).
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: scheme -> (shortest check in seconds, a hash of that scheme)
        self._schemes: dict[str, tuple[float, str]] = {}
        self.sampled = False

    def timed(self, stored: str, run: Callable[[], bool | None]) -> bool | None:
        """``run()`` (a check of ``stored``), timed and recorded if its
        format was read."""
        start = self.clock()
        result = run()
        if result is not None:
            self.record(stored, self.clock() - start)
        return result

    def record(self, stored: str, seconds: float) -> None:
        key = scheme_of(stored)
        with self._lock:
            known = self._schemes.get(key)
            if known is not None:
                self._schemes[key] = (min(known[0], seconds), known[1])
            elif len(self._schemes) < _MAX_SCHEMES:
                self._schemes[key] = (seconds, stored)

    def sample(
        self, hashes: Iterable[Any], check: Callable[[str, str], bool | None]
    ) -> None:
        """Time one check of a hash of each scheme among ``hashes`` (the
        table's, read at the first login), so that the first unknown login
        is already checked against the host's scheme."""
        seen: set[str] = set()
        for value in hashes:
            stored = as_text(value)
            if not stored or scheme_of(stored) in seen:
                continue
            seen.add(scheme_of(stored))
            self.timed(stored, functools.partial(check, stored, _SAMPLE_PASSWORD))
        self.sampled = True

    def costliest(self) -> str | None:
        """A hash of the costliest scheme seen, or ``None`` before any."""
        with self._lock:
            if not self._schemes:
                return None
            return max(self._schemes.values(), key=lambda entry: entry[0])[1]

    def schemes(self) -> dict[str, float]:
        """Each scheme seen with its cost in seconds (for tests and logs)."""
        with self._lock:
            return {key: seconds for key, (seconds, _) in self._schemes.items()}


def is_context(value: Any) -> bool:
    """Whether ``value`` is a passlib ``CryptContext`` (or anything with its
    ``verify(password, hash)`` and ``hash(password)``)."""
    return callable(getattr(value, "verify", None)) and callable(
        getattr(value, "hash", None)
    )


def _rounds() -> int:
    """The current app's bcrypt cost, for our own hashes."""
    return get_state().settings.bcrypt_rounds


class HostPasswords:
    """The password side of a :class:`~._sqlalchemy_store.SQLAlchemyUserStore`:
    its ``verify``, ``hash``, ``rehash`` and ``dummy_hash`` options (their
    meaning is documented there)."""

    def __init__(
        self,
        owner: str,
        column: str,
        verify: Any,
        hash: Callable[[str], str] | None,
        rehash: Callable[[Any, str], str | None] | None,
        dummy_hash: str | None,
    ) -> None:
        self.owner = owner
        self.column = column
        self.verify = verify
        self.hash = hash
        self.rehash = rehash
        self.dummy = dummy_hash
        self.dummies = DummyHashes()
        self._warned = False

    def validate(self, owner: str) -> None:
        """Refuse options that cannot work; ``owner`` as in
        :func:`~._hostkeys.require_callable`."""
        if isinstance(self.verify, str):
            if self.verify not in {"auto", "bcrypt", "werkzeug"}:
                raise ConfigurationError(
                    f"{owner}, verify={self.verify!r}): pass"
                    ' "auto", "bcrypt", "werkzeug", a passlib CryptContext or a'
                    " callable verify(user, password) -> bool."
                )
        elif not is_context(self.verify):
            require_callable(owner, "verify", self.verify)
        for option, value in (("hash", self.hash), ("rehash", self.rehash)):
            if value is not None:
                require_callable(owner, option, value)

    @property
    def reads_hashes(self) -> bool:
        """Whether ``verify`` reads the stored hash (not a callable of the
        host's, which reads what it likes)."""
        return isinstance(self.verify, str) or is_context(self.verify)

    def stored(self, user: Any) -> str:
        return as_text(getattr(user, self.column)) or ""

    def check_hash(self, stored: str, password: str) -> bool:
        """Check ``password`` against ``stored``, timed for the dummy."""
        rounds = _rounds()
        matched = self.dummies.timed(
            stored,
            functools.partial(
                check, stored, password, verify=self.verify, rounds=rounds
            ),
        )
        if matched is not None:
            return matched
        # Not a format the option reads: a mismatch, at the cost of a check.
        if stored and not self._warned:
            self._warned = True
            logger.warning(
                "%s: a password hash in column %r is in a format verify=%s does"
                " not read (it begins with %s); its users cannot log in.%s Pass"
                " verify=<a passlib CryptContext that knows it> or"
                " verify=<callable verify(user, password) -> bool>.",
                self.owner,
                self.column,
                self.verify if isinstance(self.verify, str) else "<CryptContext>",
                scheme_name(stored),
                # passlib knows argon2's format but needs argon2-cffi to check it.
                " Install argon2-cffi, or" if stored.startswith("$argon2") else "",
            )
        self.dummy_check(password)
        return False

    def verify_user(self, user: Any, password: str) -> bool:
        if self.reads_hashes:
            return self.check_hash(self.stored(user), password)
        return bool(self.verify(user, password))

    def sample(self, hashes: Iterable[Any]) -> None:
        """See :meth:`DummyHashes.sample`."""
        if not self.reads_hashes:
            self.dummies.sampled = True
            return
        rounds = _rounds()
        self.dummies.sample(
            hashes,
            lambda stored, password: check(
                stored, password, verify=self.verify, rounds=rounds
            ),
        )

    def dummy_check(self, password: str) -> None:
        """The check of an unknown login; see the module's docstring."""
        costliest = None if self.dummy is not None else self.dummies.costliest()
        if self.dummy is not None or costliest is not None:
            stored = self.dummy or costliest
            assert stored is not None
            check(stored, password, verify=self.verify, rounds=_rounds())
        elif is_context(self.verify) and hasattr(self.verify, "dummy_verify"):
            self.verify.dummy_verify()
        elif self.verify in {"auto", "werkzeug"}:
            check_password_hash(_werkzeug_dummy(), password)
        else:
            rounds = _rounds()
            verify_password(password, dummy_hash(rounds), rounds=rounds)

    def hasher(self) -> Callable[[str], str] | None:
        """What hashes a new password (``/password``, the CLI)."""
        if self.hash is not None:
            return self.hash
        if is_context(self.verify):
            context = self.verify
            return lambda password: str(context.hash(password))
        if self.verify in {"auto", "werkzeug"}:
            return generate_password_hash
        if self.verify == "bcrypt":
            return lambda password: hash_password(password, _rounds())
        return None

    def new_hash(self, user: Any, password: str) -> str | None:
        """After a successful login: a new hash to store, or ``None``."""
        if self.rehash is not None:
            return self.rehash(user, password)
        stored = self.stored(user)
        if is_context(self.verify):
            needs_update = getattr(self.verify, "needs_update", None)
            if needs_update is not None and needs_update(stored):
                return str(self.verify.hash(password))
        elif stored.startswith(BCRYPT_PREFIXES) and needs_rehash(stored, _rounds()):
            return hash_password(password, _rounds())
        return None


_werkzeug_dummies: list[str] = []


def _werkzeug_dummy() -> str:
    """A werkzeug hash of its default scheme, made on first need."""
    if not _werkzeug_dummies:
        _werkzeug_dummies.append(generate_password_hash("dummy for unknown logins"))
    return _werkzeug_dummies[0]
