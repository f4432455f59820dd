"""The operations of the second factor: the MFA status and verification,
recovery codes, TOTP, passkeys and re-authentication.  Each body declared
here is the one its view reads."""

from __future__ import annotations

from ._declare import Operations

OPERATIONS: Operations = {}
