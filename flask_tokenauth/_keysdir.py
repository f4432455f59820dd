"""A keys directory (``TOKENAUTH_KEYS_DIR``): signing keys that rotate
without a restart.

The directory holds one private key file per key, named by its ``kid``
(``<kid>.pem`` or ``<kid>.json``, as ``flask tokenauth keys generate``
writes them), and ``keys.json``, the state of every key::

    {"keys": {"<kid>": {"state": "signing", "created": "2026-...Z",
                        "signed_until": null}, ...}}

A key is ``next`` (published in the JWKS, verifies, does not sign yet),
``signing`` (exactly one), ``previous`` (signed until ``signed_until``,
still verifies and is published while its tokens live) or ``retired``
(neither loaded nor published).  ``keys.json`` is only ever replaced
whole, by a rename, so a process reads the old state or the new one, never
half a file; a key file is written before the state that names it.

Each process reads the state file at most once per
``TOKENAUTH_KEYS_RELOAD_INTERVAL`` and, when it changed, loads the new set
and swaps it in with :meth:`~flask_tokenauth._access.AccessTokens.use_keys`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._keys import KeySet, SigningKey
from .errors import ConfigurationError

log = logging.getLogger("flask_tokenauth")

STATE_FILE = "keys.json"
STATES = ("next", "signing", "previous", "retired")
#: A kid is a file name: RFC 7638 thumbprints are base64url.
_KID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_KEY = "TOKENAUTH_KEYS_DIR"


@dataclass(frozen=True)
class KeyEntry:
    """One key's line of ``keys.json``."""

    kid: str
    state: str
    created: datetime
    #: When it stopped signing (a ``previous`` or ``retired`` key).
    signed_until: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "created": _iso(self.created),
            "signed_until": _iso(self.signed_until) if self.signed_until else None,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be an ISO 8601 time; got {value!r}.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{where}: not a time: {value!r}.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def read_state(directory: Path) -> dict[str, KeyEntry]:
    """The entries of ``directory``'s ``keys.json``, by kid.

    :raises ConfigurationError: if it is missing or malformed.
    """
    path = directory / STATE_FILE
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(
            f"{_KEY}: {path} does not exist. Create the first key with"
            f" 'flask tokenauth keys rotate --publish --dir {directory}'."
        ) from None
    except OSError as e:
        raise ConfigurationError(
            f"{_KEY}: cannot read {path} ({e.strerror})."
        ) from None
    except ValueError:
        raise ConfigurationError(f"{_KEY}: {path} is not valid JSON.") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, dict):
        raise ConfigurationError(f'{_KEY}: {path} must be {{"keys": {{kid: ...}}}}.')
    entries: dict[str, KeyEntry] = {}
    for kid, value in keys.items():
        where = f"{path}: key {kid!r}"
        if not _KID.match(kid):
            raise ConfigurationError(f"{where}: a kid is letters, digits, - and _.")
        if not isinstance(value, dict) or value.get("state") not in STATES:
            raise ConfigurationError(
                f"{where}: its state must be one of {', '.join(STATES)}."
            )
        until = value.get("signed_until")
        entries[kid] = KeyEntry(
            kid,
            value["state"],
            _parse_time(value.get("created"), f"{where} created"),
            None if until is None else _parse_time(until, f"{where} signed_until"),
        )
    signing = [e.kid for e in entries.values() if e.state == "signing"]
    if len(signing) != 1:
        raise ConfigurationError(
            f"{_KEY}: {path} must name exactly one signing key; it names"
            f" {len(signing)}."
        )
    return entries


def write_state(directory: Path, entries: Mapping[str, KeyEntry]) -> None:
    """Replace ``keys.json`` atomically: a temporary file, fsynced, renamed
    over the old one."""
    document = {"keys": {kid: e.to_json() for kid, e in entries.items()}}
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".keys.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, directory / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def key_file(directory: Path, kid: str) -> Path | None:
    """The file of ``kid`` (``<kid>.pem`` or ``<kid>.json``), if any."""
    for suffix in (".pem", ".json"):
        path = directory / f"{kid}{suffix}"
        if path.exists():
            return path
    return None


def load_key(directory: Path, kid: str, password: bytes | None) -> SigningKey:
    path = key_file(directory, kid)
    where = f"{_KEY} key {kid!r}"
    if path is None:
        raise ConfigurationError(f"{where}: no {kid}.pem or {kid}.json in {directory}.")
    key = SigningKey.load(path, where, password=password, private=True)
    if key.kid != kid:
        raise ConfigurationError(
            f"{where}: the file {path.name} holds the key {key.kid!r}; name the"
            " file by the key's kid."
        )
    if key.is_hmac:
        raise ConfigurationError(f"{where}: HMAC secrets do not go in {_KEY}.")
    return key


def load_keyset(
    directory: Path, password: bytes | None, access_secret: bytes | None
) -> KeySet:
    """The set the directory describes: the signing key, the next and
    previous keys (and, if set, the access secret's HS256 key, so tokens
    signed before the move to a keys directory stay valid).

    :raises ConfigurationError: if anything in it is missing or malformed.
    """
    entries = read_state(directory)
    signing: SigningKey | None = None
    verifying: list[SigningKey] = []
    for entry in entries.values():
        if entry.state == "retired":
            continue
        key = load_key(directory, entry.kid, password)
        if entry.state == "signing":
            signing = key
        else:
            verifying.append(key)
    assert signing is not None  # read_state checked there is one
    if access_secret is not None:
        verifying.append(
            SigningKey.hmac(access_secret, "HS256", "TOKENAUTH_ACCESS_SECRET")
        )
    return KeySet(signing, verifying)


def _fingerprint(path: Path) -> bytes | None:
    """The state file's content: a few hundred bytes, read once per
    interval.  Its ``os.stat`` alone could miss a change: a rename may
    reuse the freed inode, and mtimes tick in jiffies, so two writes of the
    same size within a few milliseconds can look alike."""
    try:
        return path.read_bytes()
    except OSError:
        return None


class KeysWatcher:
    """Reloads a keys directory into a process when its state changes.

    :meth:`check` is called before every request: it compares the monotonic
    clock with the next check time and returns at once until then, so
    between checks (the hot path, a cached token included) it costs one
    clock read.  When due, one thread reads ``keys.json`` (the others do not
    wait), and reloads if it changed.  A directory
    that fails to load keeps the current keys and logs the error: a bad
    edit never breaks requests.
    """

    def __init__(
        self,
        directory: Path,
        interval: float,
        password: bytes | None,
        access_secret: bytes | None,
        use_keys: Callable[[KeySet], None],
    ) -> None:
        self.directory = directory
        self._interval = interval
        self._password = password
        self._access_secret = access_secret
        self._use_keys = use_keys
        self._lock = threading.Lock()
        self._due = time.monotonic() + interval
        self._seen = _fingerprint(directory / STATE_FILE)

    def check(self) -> None:
        if time.monotonic() < self._due:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread is checking
        try:
            self._due = time.monotonic() + self._interval
            seen = _fingerprint(self.directory / STATE_FILE)
            if seen == self._seen:
                return
            try:
                keys = load_keyset(self.directory, self._password, self._access_secret)
            except (ConfigurationError, ValueError) as e:
                # Retried at the next change of keys.json only: the same
                # bad file would log the same error every interval.
                self._seen = seen
                log.error("%s: keeping the current keys: %s", _KEY, e)
                return
            self._seen = seen
            self._use_keys(keys)
            log.info(
                "%s: now signing with %s (%d keys)", _KEY, keys.signing.kid, len(keys)
            )
        finally:
            self._lock.release()
