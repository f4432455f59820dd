"""The declarations the API description is made of, and the request-body
reading the views do through them: one table, two uses.

A view reads its JSON body with ``BODY.read()`` (a :class:`Body`): the
fields it declares are the fields checked, in the order declared, with the
same errors as before (``VALIDATION_ERROR`` for a missing or mistyped
field, ``INVALID_JSON``, ``UNSUPPORTED_MEDIA_TYPE``, ``PAYLOAD_TOO_LARGE``).
The same :class:`Body` gives the JSON Schema of the description's
``requestBody``, so the two cannot drift.  We keep the hand validation,
rather than pydantic or msgspec, because its errors are our stable codes
and its cost is a dictionary lookup per field (measured in the closing
note of issue 19); what is declarative is the table, not the checker.

The semantic checks (an address's syntax, a password's policy, a code's
digits) stay in the views and :mod:`.._validation`: they answer with their
own codes (``INVALID_EMAIL``, ``INVALID_PASSWORD``, ...), which the
operation lists among its errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import request

from .._config import Settings
from .._state import get_state
from .._validation import cached_json_object, require_string
from ..errors import TokenAuthError, ValidationError

#: A JSON Schema, as a plain mapping.
Schema = Mapping[str, Any]

#: A schema's members that depend on the app (its settings and login field),
#: e.g. a password's ``minLength``: merged into the field's static schema.
Limits = Callable[[Settings, str], Schema]

#: The name of a field that is the user store's login field (``email`` for
#: our own users, ``username`` for a host's): resolved per app.
LOGIN = "{login}"


def login_field() -> str:
    """The current app's login field (see :data:`LOGIN`)."""
    return get_state().user_store.login_field


@dataclass(frozen=True)
class Field:
    """One member of a JSON body.

    ``schema`` is its JSON Schema; only ``"type"`` is enforced by
    :meth:`Body.read` (a string is checked as :func:`.._validation.require_string`
    checks it, an object must be a JSON object, a boolean a boolean); the
    rest (``format``, ``maxLength``, ...) describes what the view's own
    checks accept.  ``limits`` adds the members that depend on the app's
    settings (a password's lengths), so a fuzzer's valid value is one the
    app accepts.  ``when``: the member exists only while this returns true
    for the app's settings (``/reauthenticate``'s ``code`` with TOTP on);
    otherwise it is neither described nor checked, and the view answers it
    as it did before any declaration (``404`` for a code with TOTP off).
    """

    name: str
    schema: Schema
    required: bool = True
    description: str = ""
    limits: Limits | None = None
    when: Callable[[Settings], bool] | None = None

    def on(self, settings: Settings) -> bool:
        """Whether the member exists for an app of these settings."""
        return self.when is None or self.when(settings)

    def resolved_name(self, login: str) -> str:
        return login if self.name == LOGIN else self.name

    def check(self, name: str, value: Any) -> Any:
        kind = self.schema.get("type")
        if kind == "string":
            if isinstance(value, str) and value.isascii():
                return value  # the common case: nothing to encode-check
            return require_string({name: value}, name)
        if kind == "object" and not isinstance(value, dict):
            raise ValidationError(f"'{name}' must be an object")
        if kind == "boolean" and not isinstance(value, bool):
            raise ValidationError(f"'{name}' must be true or false")
        return value


@dataclass(frozen=True)
class Body:
    """A JSON object body: its fields and, where a body comes in several
    shapes (a code *or* a recovery code), the groups of which one is sent
    (``one_of``: tuples of field names, each group's fields all required
    in that shape; the fields themselves are then declared optional)."""

    fields: tuple[Field, ...]
    one_of: tuple[tuple[str, ...], ...] = ()
    description: str = ""
    #: ``False``: the request may come without a body, which the view then
    #: does not read (``/verify-email/resend`` with an access token); the
    #: description says so (``requestBody.required``), so that a fuzzer
    #: does not expect a refusal.
    required: bool = True

    @functools.cached_property
    def names_login(self) -> bool:
        """Whether a field is the login field (:data:`LOGIN`)."""
        return any(item.name == LOGIN for item in self.fields)

    @functools.cached_property
    def _in_shapes(self) -> frozenset[str]:
        """The fields that belong to a shape of ``one_of``."""
        return frozenset(name for group in self.one_of for name in group)

    @functools.cached_property
    def _switched(self) -> bool:
        """Whether a field depends on a setting (``Field.when``)."""
        return any(item.when is not None for item in self.fields)

    def _shape(self, body: dict[str, Any]) -> tuple[str, ...]:
        """The fields of the shape of ``one_of`` the view takes: the first
        group (in the order declared, which is the view's order) of which a
        member is sent, or none."""
        for group in self.one_of:
            if any(body.get(name) is not None for name in group):
                return group
        return ()

    def read(self, login: str | None = None) -> dict[str, Any]:
        """The request's JSON object, its declared fields checked in order
        (a missing required one, or one of the wrong type, is
        ``400 VALIDATION_ERROR``); the view checks every value's meaning.

        Of a body with ``one_of``, only the shape the view takes is checked
        (each of its fields required): the members of the other shapes are
        ignored, as the view ignores them (``/reauthenticate`` with a
        password and a ``"code": 123456`` was always answered for the
        password).  A field switched off by the settings (``Field.when``)
        is not checked: the view answers it (a ``404``, say) as before.

        :param login: the app's login field, if the view has it at hand
            (else looked up, by a body that has one: see :data:`LOGIN`)."""
        body = cached_json_object(request)
        if login is None:
            login = login_field() if self.names_login else LOGIN
        shape = self._shape(body) if self.one_of else ()
        settings = get_state().settings if self._switched else None
        for item in self.fields:
            name = item.resolved_name(login)
            in_shape = item.name in shape
            if not in_shape and item.name in self._in_shapes:
                continue
            if settings is not None and not item.on(settings):
                continue
            value = body.get(name)
            if value is None:
                if item.required or in_shape:
                    raise ValidationError(f"'{name}' is required")
                continue
            item.check(name, value)
        return body

    def json_schema(self, login: str, settings: Settings) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        present = {item.name for item in self.fields if item.on(settings)}
        for item in self.fields:
            if item.name not in present:
                continue
            name = item.resolved_name(login)
            schema = dict(item.schema)
            if item.limits is not None:
                schema.update(item.limits(settings, login))
            if item.description:
                schema["description"] = item.description
            properties[name] = schema
            if item.required:
                required.append(name)
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        shapes = [group for group in self.one_of if present.issuperset(group)]
        if shapes:
            out["oneOf"] = [
                {"required": [login if n == LOGIN else n for n in group]}
                for group in shapes
            ]
        return out


@dataclass(frozen=True)
class Reply:
    """A successful (or otherwise expected, non-error) answer.

    ``schema`` is the JSON Schema of its body (``None``: no body);
    ``headers`` names entries of the description's ``components.headers``
    (see :mod:`._components`), e.g. ``"SetRefreshCookie"``; ``when``: the
    answer is described only while this returns true for the app's
    settings (``/register``'s 202 of the enumeration-safe mode).
    """

    status: int
    description: str
    schema: Schema | None = None
    headers: tuple[str, ...] = ()
    content_type: str = "application/json"
    when: Callable[[Settings], bool] | None = None


#: Who may call an operation.
PUBLIC = "public"
#: A Bearer access token (``Authorization: Bearer``).
BEARER = "bearer"
#: The refresh cookie (``/refresh``, ``/logout``).
REFRESH_COOKIE = "cookie"
#: A Bearer token if sent, else public (``/verify-email/resend``).
BEARER_OPTIONAL = "bearer-optional"
#: The refresh cookie if sent, else public (``/logout`` answers 200 either way).
REFRESH_COOKIE_OPTIONAL = "cookie-optional"


@dataclass(frozen=True)
class Operation:
    """One method of one route.

    :param id: the ``operationId`` (camelCase; a generated client's method).
    :param tag: the group it is listed under (``auth``, ``sessions``, ...).
    :param replies: the answers that are not errors.
    :param errors: every :class:`~flask_tokenauth.errors.TokenAuthError` the
        operation may answer besides the ones its ``body`` and ``security``
        imply (those are added by :mod:`._document`).
    :param when: the operation is in the description only while this
        returns true for the app's settings (a flow that is switched off
        answers 404 and is not described).
    :param links: OpenAPI ``links`` per reply status (stateful fuzzing and
        client generators follow them).
    """

    id: str
    summary: str
    tag: str
    replies: tuple[Reply, ...]
    errors: tuple[type[TokenAuthError], ...] = ()
    body: Body | None = None
    security: str = PUBLIC
    description: str = ""
    when: Callable[[Settings], bool] | None = None
    links: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    #: Query parameters: name to JSON Schema (all optional).
    query: Mapping[str, Schema] = field(default_factory=dict)
    #: Request headers the view reads (``If-None-Match``): name to JSON
    #: Schema (all optional).
    request_headers: Mapping[str, Schema] = field(default_factory=dict)
    rate_limited: bool = False


#: Every route's operations: blueprint-local endpoint, then method.
Operations = Mapping[str, Mapping[str, Operation]]
