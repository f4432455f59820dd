"""The OpenAPI 3.1 document of one registration of the blueprint, built from
the app's URL map and the operation tables (:mod:`._ops_core`,
:mod:`._ops_sessions`, :mod:`._ops_public`, :mod:`._ops_mail`,
:mod:`._ops_factors`).

The paths are the rules the app really has, so a blueprint mounted under
another prefix, renamed, or nested in a host's blueprint is described where
it is; the operations are the tables', so every route must have an entry
(:func:`undescribed` names the ones that do not; a test walks the URL map
with it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from flask.sansio.app import App
from werkzeug.routing import Rule

from .._config import Settings
from .._state import get_state
from .._version import __version__
from ..errors import TokenAuthError
from . import _components as components
from ._declare import (
    BEARER,
    BEARER_OPTIONAL,
    REFRESH_COOKIE,
    REFRESH_COOKIE_OPTIONAL,
    Operation,
    Reply,
)
from ._ops_core import OPERATIONS as CORE
from ._ops_factors import OPERATIONS as FACTORS
from ._ops_factors import SCHEMAS as FACTOR_SCHEMAS
from ._ops_mail import OPERATIONS as MAIL
from ._ops_passkeys import OPERATIONS as PASSKEYS
from ._ops_passkeys import SCHEMAS as PASSKEY_SCHEMAS
from ._ops_public import OPERATIONS as PUBLIC_DOCUMENTS
from ._ops_sessions import OPERATIONS as SESSIONS

#: Every operation, by blueprint-local endpoint, then method.
OPERATIONS: dict[str, dict[str, Operation]] = {}
for _table in (CORE, SESSIONS, PUBLIC_DOCUMENTS, MAIL, FACTORS, PASSKEYS):
    for _endpoint, _methods in _table.items():
        if _endpoint in OPERATIONS:
            raise RuntimeError(f"endpoint {_endpoint!r} is declared twice")
        OPERATIONS[_endpoint] = dict(_methods)

_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _rules(app: App, registration: str) -> Iterator[tuple[Rule, str]]:
    """The rules of one registration of the blueprint (its endpoints are
    ``<registration>.<name>``), with their local endpoint names."""
    prefix = registration + "."
    for rule in app.url_map.iter_rules():
        local = rule.endpoint.removeprefix(prefix)
        if rule.endpoint.startswith(prefix) and "." not in local:
            yield rule, local


def undescribed(app: App, registration: str) -> list[str]:
    """The endpoints of ``registration`` that no operation table declares."""
    return sorted(
        local for _, local in _rules(app, registration) if local not in OPERATIONS
    )


def served(local: str, settings: Settings) -> dict[str, Operation]:
    """The operations of endpoint ``local`` that ``settings`` switch on, by
    method: what the document describes and what ``OPTIONS`` allows."""
    return {
        method: operation
        for method, operation in OPERATIONS.get(local, {}).items()
        if operation.when is None or operation.when(settings)
    }


def build(app: App, registration: str, server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the blueprint registered as
    ``registration`` (``request.blueprint`` of its requests) on ``app``,
    describing the operations the app's settings switch on."""
    state = get_state(app)
    settings = state.settings
    login = state.user_store.login_field
    paths: dict[str, dict[str, Any]] = {}
    ids: set[str] = set()
    for rule, local in sorted(_rules(app, registration), key=lambda r: r[0].rule):
        # A route no table declares (a test keeps :func:`undescribed` empty)
        # is left out rather than failing the document.
        path = _ARGUMENT.sub(r"{\1}", rule.rule)
        for method, operation in served(local, settings).items():
            if operation.id in ids:
                raise RuntimeError(f"operationId {operation.id!r} is used twice")
            ids.add(operation.id)
            item = _operation(operation, settings, login)
            parameters = [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
                for name in rule.arguments
            ]
            parameters += [
                {"name": name, "in": "query", "required": False, "schema": dict(schema)}
                for name, schema in operation.query.items()
            ]
            parameters += [
                {"name": name, "in": "header", "required": False, "schema": dict(kind)}
                for name, kind in operation.request_headers.items()
            ]
            if parameters:
                item["parameters"] = parameters
            paths.setdefault(path, {})[method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{app.name}: authentication (flask_tokenauth)",
            "version": __version__,
            "description": (
                "Register, log in, refresh and log out with short-lived JWT access"
                " tokens and rotated refresh cookies; sessions, mail flows, second"
                " factors and passkeys. Every error is a JSON object with a stable"
                " `code`."
            ),
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": {
                **components.schemas(login),
                **FACTOR_SCHEMAS,
                **PASSKEY_SCHEMAS,
            },
            "headers": components.headers(settings),
            "securitySchemes": components.security_schemes(settings),
        },
    }


def _operation(operation: Operation, settings: Settings, login: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "operationId": operation.id,
        "summary": operation.summary,
        "tags": [operation.tag],
    }
    if operation.description:
        item["description"] = operation.description
    if operation.security == BEARER:
        item["security"] = [{"bearerAuth": []}]
    elif operation.security == REFRESH_COOKIE:
        item["security"] = [{"refreshCookie": []}]
    elif operation.security == BEARER_OPTIONAL:
        item["security"] = [{"bearerAuth": []}, {}]
    elif operation.security == REFRESH_COOKIE_OPTIONAL:
        item["security"] = [{"refreshCookie": []}, {}]
    else:
        item["security"] = []
    if operation.body is not None:
        item["requestBody"] = {
            "required": operation.body.required,
            "content": {
                "application/json": {
                    "schema": operation.body.json_schema(login, settings)
                }
            },
        }
    responses: dict[str, Any] = {}
    for reply in operation.replies:
        if reply.when is None or reply.when(settings):
            responses[str(reply.status)] = _reply(reply, operation)
    for status, codes in _errors(operation).items():
        responses.setdefault(str(status), _error_reply(status, codes))
    item["responses"] = dict(sorted(responses.items()))
    return item


def _reply(reply: Reply, operation: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.schema is not None:
        out["content"] = {reply.content_type: {"schema": dict(reply.schema)}}
    if reply.headers:
        out["headers"] = {
            _header_name(name): {"$ref": f"#/components/headers/{name}"}
            for name in reply.headers
        }
    links = operation.links.get(reply.status)
    if links:
        out["links"] = dict(links)
    return out


def _header_name(component: str) -> str:
    return {
        "SetRefreshCookie": "Set-Cookie",
        "SetPasskeyCookie": "Set-Cookie",
        "ClearRefreshCookie": "Set-Cookie",
        "SetDeviceCookie": "Set-Cookie",
        "WWWAuthenticate": "WWW-Authenticate",
        "RetryAfter": "Retry-After",
        "ETag": "ETag",
    }[component]


def _errors(operation: Operation) -> dict[int, list[str]]:
    """The error codes of an operation, by status."""
    classes: list[type[TokenAuthError]] = list(operation.errors)
    if operation.body is not None:
        classes += components.BODY_ERRORS
    if operation.security == BEARER:
        classes += components.BEARER_ERRORS
    if operation.security == BEARER_OPTIONAL:
        classes += components.BEARER_ERRORS[1:]  # a token sent but bad
    if operation.rate_limited:
        classes += components.RATE_LIMIT_ERRORS
    classes += components.ALWAYS_ERRORS
    by_status: dict[int, list[str]] = {}
    for cls in classes:
        codes = by_status.setdefault(cls.code or 400, [])
        if cls.error_code not in codes:
            codes.append(cls.error_code)
    return by_status


def _error_reply(status: int, codes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: " + ", ".join(codes),
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [
                        components.ref("Error"),
                        {"properties": {"code": {"enum": codes}}},
                    ]
                }
            }
        },
    }
    if status == 401:
        out["headers"] = {
            "WWW-Authenticate": {"$ref": "#/components/headers/WWWAuthenticate"}
        }
    elif status == 429:
        out["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return out
