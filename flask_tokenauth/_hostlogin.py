"""How a login a client typed finds its host user: the host's
``normalize=``, and whether the login column compares case-insensitively
(declared by the model, or learnt from the table at the first login), which
decides the key that counts an unknown login's wrong passwords."""

from __future__ import annotations

import logging
import string
import unicodedata
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session as OrmSession

from ._hostkeys import compares_case_insensitively, declared_case_insensitive
from .errors import ValidationError

logger = logging.getLogger("flask_tokenauth")

#: SQLite's NOCASE (and its lower()) fold the ASCII letters only.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class HostLogin:
    """The login column of one store.

    :param owner: ``"SQLAlchemyUserStore(User"``, for the warning.
    """

    def __init__(
        self,
        owner: str,
        field: str,
        column: Any,
        normalize: Callable[[str], str] | None,
    ) -> None:
        self.owner = owner
        self.field = field
        self.column = column
        self.normalize = normalize
        self.length: int | None = getattr(column.type, "length", None)
        #: Whether the column compares case-insensitively: from the model
        #: now, asked of the database at the first login.
        self.case_insensitive = False
        self._warned = False
        #: Whether that comparison folds ASCII letters only (SQLite's
        #: NOCASE); else as str.lower() (citext, *_ci), learnt with it.
        self.ascii_fold = False
        if declared_case_insensitive(column):
            self.case_insensitive = True
            self._warn()

    def normalized(self, value: str) -> str:
        """:meth:`UserStore.normalize_login`."""
        login = value.strip()
        if self.normalize is not None:
            login = self.normalize(login)
        if (
            not login
            or (self.length is not None and len(login) > self.length)
            or any(unicodedata.category(c) in {"Cc", "Cs"} for c in login)
        ):
            raise ValidationError(f"Invalid {self.field}")
        return login

    def learn(self, session: OrmSession, dialect: str) -> None:
        """At the first login: whether the table compares the column
        case-insensitively, whatever the model says."""
        self.ascii_fold = dialect == "sqlite"
        if not self.case_insensitive and compares_case_insensitively(
            session, self.column
        ):
            self.case_insensitive = True
            self._warn()

    def _warn(self) -> None:
        if self.normalize is None and not self._warned:
            self._warned = True
            logger.warning(
                "%s, login=%r): the column compares case-insensitively (COLLATE"
                " NOCASE, citext, a *_ci collation) but no normalize= is set:"
                " pass normalize=str.lower (and store logins in lower case) so"
                " that every spelling is one login in the signals, logs and"
                " limits of unknown logins.",
                self.owner,
                self.field,
            )

    def key(self, login: str) -> str:
        """:meth:`UserStore.login_key`."""
        # On a case-insensitive column every spelling finds the same row:
        # an unknown login's spellings share one counter too, or the limits
        # would tell which logins exist (one spelling spent, another not).
        # Folded as the column compares (see learn), no further: casefold()
        # joined "strasse" and "straße", which no column does.
        if not self.case_insensitive:
            return login
        return login.translate(_ASCII_LOWER) if self.ascii_fold else login.lower()
