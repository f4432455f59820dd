"""The app's own claims in access tokens: the ``additional_claims`` loader,
called for every token issued, and the claims it may not set.

A loader is ``f(sub)`` or, to be given the user object too, ``f(sub, user)``
(a parameter named ``user``; see :func:`wants_user`).  Which one is decided
once, when the app is set up, not per token.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

#: Claims the extension sets and checks; an app's own claims never replace them.
RESERVED_CLAIMS = frozenset(
    # ``idf``: the session's identity fingerprint (see ._identity).
    # ``amr``, ``aal``, ``auth_time``, ``mfa_state``: how the session was
    # authenticated (see ._authlevel).
    {"sub", "iat", "exp", "nbf", "iss", "aud", "jti", "sid", "typ", "idf"}
    | {"amr", "aal", "auth_time", "mfa_state"}
)
#: The claim that says whether the user's address is verified: set by us
#: only while ``TOKENAUTH_EMAIL_VERIFICATION`` is on, and reserved only then
#: (an app with verification off may have an ``email_verified`` of its own).
EMAIL_VERIFIED = "email_verified"


class ClaimsForUser(Protocol):
    """A claims loader that also takes the user: ``f(sub, user)``, the
    user object of the user store (your model's, with a host store), or
    ``None`` if it was deleted while the token was being issued."""

    def __call__(self, sub: str, user: Any) -> Mapping[str, Any]: ...


#: The app's own claims for a new access token: ``f(sub)`` receives the
#: ``sub`` (the user id as a string); ``f(sub, user)``, a loader with a
#: parameter named ``user``, receives the user too (see :func:`wants_user`).
#: Returns a mapping of JSON-serializable values.
ClaimsLoader = Callable[[str], Mapping[str, Any]] | ClaimsForUser

#: "The caller has not loaded the user" (``None`` is a user deleted meanwhile).
NOT_GIVEN: Any = object()


def wants_user(loader: Callable[..., Any]) -> bool:
    """Whether ``loader`` takes the user: it has a parameter named ``user``
    that can be passed by keyword.

    By name rather than by the number of parameters: a one-argument loader
    written before (``f(sub)``) keeps working unchanged, and
    ``f(sub, user)`` says what it receives where it is defined, with no
    second option to choose between.
    """
    try:
        parameter = inspect.signature(loader).parameters.get("user")
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


class AppClaims:
    """The app's claims for each token, from its loader (if any).

    :param loader: the app's ``additional_claims``, or ``None``.
    :param load_user: ``f(sub) -> user or None``, for a loader that takes
        the user when the issuer has not got it at hand (a refresh).
    """

    def __init__(
        self,
        loader: ClaimsLoader | None,
        load_user: Callable[[str], Any] | None = None,
    ) -> None:
        #: At most one of the two is set.
        self._of_sub: Callable[[str], Mapping[str, Any]] | None = None
        self._of_user: ClaimsForUser | None = None
        if loader is not None and wants_user(loader):
            self._of_user = cast(ClaimsForUser, loader)
        elif loader is not None:
            self._of_sub = cast(Callable[[str], Mapping[str, Any]], loader)
        self._load_user = load_user

    def for_token(
        self,
        user_id: int | str,
        extra_claims: Mapping[str, Any] | None = None,
        user: Any = NOT_GIVEN,
    ) -> dict[str, Any]:
        """The loader's claims and ``extra_claims``, checked.

        :raises ValueError: if they name a reserved claim: a bug of the app,
            so it fails loudly (a 500, with the message in the log) rather
            than being silently dropped.
        :raises TypeError: if the loader returns something other than a
            mapping.
        """
        claims: dict[str, Any] = {}
        loaded: object = NOT_GIVEN  # no loader
        if self._of_sub is not None:
            loaded = self._of_sub(str(user_id))
        elif self._of_user is not None:
            if user is NOT_GIVEN:
                load = self._load_user
                user = None if load is None else load(str(user_id))
            loaded = self._of_user(str(user_id), user=user)
        if loaded is not NOT_GIVEN:
            if not isinstance(loaded, Mapping):
                raise TypeError(
                    "The additional_claims loader must return a mapping of"
                    f" claims; it returned {type(loaded).__name__}."
                )
            claims.update(loaded)
        if extra_claims:
            claims.update(extra_claims)
        if reserved := RESERVED_CLAIMS.intersection(claims):
            raise ValueError(
                "Additional access-token claims cannot set the reserved"
                f" claims {', '.join(sorted(reserved))}: flask_tokenauth sets"
                " and checks them itself. Rename the claim(s) in your"
                " additional_claims loader."
            )
        return claims
