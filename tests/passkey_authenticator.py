"""A WebAuthn authenticator and browser client in Python, for the HTTP tests
of passkeys: it answers the server's options as ``navigator.credentials``
would (the JSON a browser's ``PublicKeyCredential.toJSON()`` gives), with
real P-256 keys and signatures, so the server's verification is the real
one.  The headless-Chromium tests (``tests/test_passkeys_browser.py``) run
the same ceremonies with Chrome's virtual authenticator.

What a browser would check and this one does not (the RP id against the
origin, the user's gesture) is the point: a test can play a phishing page or
a cloned authenticator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0


@dataclass
class Authenticator:
    """One authenticator (a phone, a security key) and the browser using it.

    :param counts: whether it has a sign counter (synced passkeys have none:
        always ``0``).
    :param synced: backup eligible and backed up (``BE``, ``BS``): a synced
        passkey, ``amr`` ``swk``; else device-bound, ``hwk``.
    :param verifies_user: sets ``UV`` (a PIN or biometric was checked).
    """

    origin: str
    counts: bool = True
    synced: bool = False
    verifies_user: bool = True
    credentials: dict[bytes, Credential] = field(default_factory=dict)

    def _flags(self, *extra: int) -> int:
        flags = UP | (UV if self.verifies_user else 0)
        if self.synced:
            flags |= BE | BS
        for bit in extra:
            flags |= bit
        return flags

    def _client_data(
        self, kind: str, options: dict[str, Any], origin: str | None
    ) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": options["challenge"],
                "origin": origin or self.origin,
                "crossOrigin": False,
            }
        ).encode()

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.create({publicKey: options})``, as JSON."""
        rp = rp_id or options["rp"]["id"]
        excluded = {unb64url(c["id"]) for c in options.get("excludeCredentials", [])}
        if excluded & set(self.credentials):
            raise ValueError("InvalidStateError: already registered here")
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        cose = cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        credential = Credential(
            secrets.token_bytes(32), key, rp, unb64url(options["user"]["id"])
        )
        self.credentials[credential.id] = credential
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(AT)])
            + struct.pack(">I", 0)
            + b"\x00" * 16  # aaguid
            + struct.pack(">H", len(credential.id))
            + credential.id
            + cose
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(
                    self._client_data("webauthn.create", options, origin)
                ),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        credential: Credential | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.get({publicKey: options})``, as JSON: the
        first credential for the RP that the options allow (or
        ``credential``)."""
        if credential is None:
            allowed = {unb64url(c["id"]) for c in options.get("allowCredentials", [])}
            candidates = [
                c
                for c in self.credentials.values()
                if c.rp_id == options["rpId"] and (not allowed or c.id in allowed)
            ]
            if not candidates:
                raise ValueError("NotAllowedError: no credential")
            credential = candidates[0]
        if self.counts:
            credential.sign_count += 1
        auth_data = (
            hashlib.sha256(credential.rp_id.encode()).digest()
            + bytes([self._flags()])
            + struct.pack(">I", credential.sign_count)
        )
        client_data = self._client_data("webauthn.get", options, origin)
        signature = credential.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def clone(self) -> Authenticator:
        """Another authenticator with copies of these credentials (and their
        counters as they are now): what an attacker who extracted the keys
        holds."""
        copy = Authenticator(self.origin, self.counts, self.synced, self.verifies_user)
        for key, c in self.credentials.items():
            copy.credentials[key] = Credential(
                c.id, c.key, c.rp_id, c.user_handle, c.sign_count
            )
        return copy
