"""The operations of the mail flows (verification, reset, address change,
sign-in by mail).  Each body declared here is the one its view reads."""

from __future__ import annotations

from ._declare import Operations

OPERATIONS: Operations = {}
