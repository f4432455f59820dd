"""Key material: reading a key from wherever the configuration says it is
(a path to a PEM or JWK file, the PEM or JWK text itself, a JWK as a dict,
or a ``cryptography`` key object), refusing what is weak or mismatched, and
making new keys for the CLI.

Kept apart from :mod:`._keys`, which holds what a loaded key *does* (sign,
verify, be looked up by ``kid``): this module runs at start-up and at a
keys-directory reload only, never per token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from .errors import ConfigurationError

#: HMAC algorithms, each with the minimum key length RFC 7518 section 3.2
#: asks for: the hash's output size.
HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
#: Asymmetric algorithms: a private key signs, its public half verifies and
#: is published in the JWKS document.
ASYMMETRIC_ALGORITHMS = ("EdDSA", "ES256", "RS256")
ALGORITHMS = (*HMAC_ALGORITHMS, *ASYMMETRIC_ALGORITHMS)
#: NIST SP 800-57: RSA below 2048 bits no longer protects anything.
MIN_RSA_BITS = 2048
#: Members of a private JWK (RFC 7518 section 6): never published.
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


def crypto() -> Any:
    """The key types of ``cryptography`` (PyJWT's ``crypto`` extra)."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    except ImportError:  # pragma: no cover - an install requirement
        raise ConfigurationError(
            "TOKENAUTH_SIGNING_KEY needs the cryptography package: pip install"
            " 'pyjwt[crypto]'."
        ) from None
    return ec, ed25519, rsa


#: PyJWT's algorithm objects, made once (each call of
#: ``get_default_algorithms`` makes them all again).
_ALGORITHM_OBJECTS = get_default_algorithms()


def pyjwt_algorithm(name: str) -> Any:
    return _ALGORITHM_OBJECTS[name]


def thumbprint(algorithm: str, public: Any) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): the ``kid`` of an
    asymmetric key without one, the same wherever the key is loaded."""
    jwk = pyjwt_algorithm(algorithm).to_jwk(public, as_dict=True)
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}
    members = required.get(jwk["kty"], ("crv", "kty", "x"))
    canonical = json.dumps(
        {m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def read(
    source: object, key: str, password: bytes | None
) -> tuple[Any, str | None, str | None]:
    """``(key object or HMAC bytes, the JWK's alg, the JWK's kid)``."""
    ec, ed25519, rsa = crypto()
    key_types = (
        rsa.RSAPrivateKey,
        rsa.RSAPublicKey,
        ec.EllipticCurvePrivateKey,
        ec.EllipticCurvePublicKey,
        ed25519.Ed25519PrivateKey,
        ed25519.Ed25519PublicKey,
    )
    if isinstance(source, key_types):
        return source, None, None
    if isinstance(source, Mapping):
        return _read_jwk(dict(source), key)
    if isinstance(source, Path) or (
        isinstance(source, str) and not _looks_inline(source)
    ):
        path = Path(source)
        try:
            text = path.read_bytes()
        except OSError as e:
            raise ConfigurationError(
                f"{key}: cannot read the key file {str(path)!r} ({e.strerror}). Set"
                f" {key} to the path of a PEM or JWK file, or to the PEM or JWK"
                " text itself."
            ) from None
        return read(text, key, password)
    if isinstance(source, str):
        source = source.encode()
    if not isinstance(source, bytes):
        raise ConfigurationError(
            f"{key} must be a path, PEM or JWK text, a JWK dict or a key"
            f" object; got {type(source).__name__}."
        )
    stripped = source.strip()
    if stripped.startswith(b"{"):
        try:
            jwk = json.loads(stripped)
        except ValueError:
            raise ConfigurationError(f"{key} is not valid JWK JSON.") from None
        if not isinstance(jwk, dict):
            raise ConfigurationError(f"{key} is not a JWK (a JSON object).")
        return _read_jwk(jwk, key)
    return _read_pem(stripped, key, password), None, None


def _looks_inline(text: str) -> bool:
    stripped = text.lstrip()
    return stripped.startswith(("{", "-----BEGIN"))


def _read_pem(data: bytes, key: str, password: bytes | None) -> Any:
    from cryptography.hazmat.primitives import serialization

    if b"PRIVATE KEY-----" in data:
        try:
            # The password is for encrypted keys only: a previous or next key
            # in TOKENAUTH_VERIFY_KEYS may be stored either way.
            encrypted = b"ENCRYPTED" in data
            return serialization.load_pem_private_key(
                data, password=password if encrypted else None
            )
        except TypeError as e:  # encrypted without a password, or vice versa
            raise ConfigurationError(
                f"{key} is an encrypted private key: set"
                " TOKENAUTH_SIGNING_KEY_PASSWORD to its password."
                if "encrypted" in str(e) and password is None
                else f"{key}: {e} (TOKENAUTH_SIGNING_KEY_PASSWORD)."
            ) from None
        except ValueError:
            raise ConfigurationError(
                f"{key}: cannot load the private key (a wrong"
                " TOKENAUTH_SIGNING_KEY_PASSWORD, or a damaged or unsupported"
                " PEM)."
            ) from None
    if b"PUBLIC KEY-----" in data:
        try:
            return serialization.load_pem_public_key(data)
        except ValueError:
            raise ConfigurationError(
                f"{key}: cannot load the public key PEM."
            ) from None
    raise ConfigurationError(
        f"{key} is neither a PEM key ('-----BEGIN ... KEY-----') nor a JWK"
        " ('{...}'), nor the path of a file holding one."
    )


def _read_jwk(jwk: dict[str, Any], key: str) -> tuple[Any, str | None, str | None]:
    alg, kid = jwk.get("alg"), jwk.get("kid")
    if alg is not None and alg not in ALGORITHMS:
        raise ConfigurationError(
            f"{key}: the JWK's alg {alg!r} is not one of {', '.join(ALGORITHMS)}."
        )
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise ConfigurationError(f"{key}: the JWK's kid must be a non-empty string.")
    if jwk.get("kty") == "oct":
        try:
            secret = base64.urlsafe_b64decode(str(jwk["k"]) + "==")
        except (KeyError, ValueError):
            raise ConfigurationError(f"{key}: the oct JWK has no valid 'k'.") from None
        return secret, alg, kid
    try:
        # The key type alone: whether it can do ``alg`` is checked, with a
        # message naming the key, in _check_asymmetric.
        obj = jwt.PyJWK({k: v for k, v in jwk.items() if k != "alg"}).key
    except jwt.PyJWTError as e:
        raise ConfigurationError(f"{key}: not a usable JWK ({e}).") from None
    return obj, alg, kid


def check_asymmetric(
    obj: Any, algorithm: str | None, key: str, private: bool
) -> tuple[str, Any, Any]:
    """``(algorithm, public key, private key or None)``, refusing what the
    key cannot do or does too weakly."""
    ec, ed25519, rsa = crypto()
    is_private = isinstance(
        obj, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
    )
    if private and not is_private:
        raise ConfigurationError(
            f"{key} is a public key; signing needs the private key (PEM"
            " '-----BEGIN PRIVATE KEY-----' or a JWK with 'd'). Public keys go"
            " in TOKENAUTH_VERIFY_KEYS."
        )
    public = obj.public_key() if is_private else obj
    if isinstance(public, rsa.RSAPublicKey):
        implied = "RS256"
        if public.key_size < MIN_RSA_BITS:
            raise ConfigurationError(
                f"{key} is a {public.key_size}-bit RSA key; RS256 needs at least"
                f" {MIN_RSA_BITS} bits. Generate a new key (or use EdDSA)."
            )
    elif isinstance(public, ec.EllipticCurvePublicKey):
        implied = "ES256"
        if not isinstance(public.curve, ec.SECP256R1):
            raise ConfigurationError(
                f"{key} is an EC key on {public.curve.name}; ES256 needs P-256"
                " (secp256r1)."
            )
    elif isinstance(public, ed25519.Ed25519PublicKey):
        implied = "EdDSA"
    else:
        raise ConfigurationError(
            f"{key}: unsupported key type {type(public).__name__}; use an"
            " Ed25519 (EdDSA), P-256 (ES256) or RSA >= 2048 bits (RS256) key."
        )
    if algorithm is not None and algorithm != implied:
        raise ConfigurationError(
            f"{key} is a key for {implied}, not {algorithm}: set"
            f" TOKENAUTH_ALGORITHM={implied} or give a key for {algorithm}."
        )
    return implied, public, obj if is_private else None


def split_sources(value: object) -> list[object]:
    """The entries of ``TOKENAUTH_VERIFY_KEYS``: a list as given, a JWKS
    document's keys, every block of concatenated PEM text, or paths
    separated by commas or ``os.pathsep``."""
    if value is None or value == "" or value == ():
        return []
    if isinstance(value, Mapping):
        keys = value.get("keys") if "keys" in value else [value]
        return list(keys) if isinstance(keys, list) else [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                return split_sources(json.loads(text))
            except ValueError:
                return [text]
        if text.startswith("-----BEGIN"):
            return [m.group(0) for m in _PEM_BLOCK.finditer(text)]
        parts = re.split(rf"[,{re.escape(os.pathsep)}]", text)
        return [p.strip() for p in parts if p.strip()]
    return [value]


def generate(algorithm: str) -> Any:
    """A new private key for ``algorithm`` (one of
    :data:`ASYMMETRIC_ALGORITHMS`): Ed25519, P-256, or RSA of 2048 bits."""
    ec, ed25519, rsa = crypto()
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    raise ValueError(f"cannot generate a key for {algorithm}")


def private_pem(private_key: Any) -> str:
    """``private_key`` as unencrypted PKCS#8 PEM."""
    from cryptography.hazmat.primitives import serialization

    data = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return str(data.decode())
