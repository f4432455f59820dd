"""Signing keys: each loaded once into a key object, pinned to one
algorithm, named by a ``kid``; and the set of keys an app verifies with.

PyJWT parses a PEM string again on every call it is given one (tens of
milliseconds per token for RSA), so every key is turned into a
``cryptography`` key object (or the HMAC secret's bytes) here, at start-up,
and the tokens are signed and verified with those objects.

A :class:`KeySet` is immutable: the current signing key, and every key whose
tokens are accepted (the current one, previous ones still inside their
tokens' lifetime, and keys announced for the future).  Verification looks
the token's ``kid`` up in it and uses that key only, with that key's
algorithm only; an unknown ``kid`` is refused without trying the others.
Rotating keys means building a new set and swapping it in (see
:meth:`flask_tokenauth._access.AccessTokens.use_keys`).

Where keys come from (``TOKENAUTH_SIGNING_KEY``, each entry of
``TOKENAUTH_VERIFY_KEYS``): a path to a PEM or JWK file, the PEM or JWK
text itself, a JWK as a dict, or a ``cryptography`` key object.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
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


def _crypto() -> Any:
    """The key types of ``cryptography`` (PyJWT's ``crypto`` extra)."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    except ImportError:  # pragma: no cover - an install requirement
        raise ConfigurationError(
            "TOKENAUTH_SIGNING_KEY needs the cryptography package: pip install"
            " 'pyjwt[crypto]'."
        ) from None
    return ec, ed25519, rsa


@dataclass(frozen=True, eq=False)
class SigningKey:
    """One key, pinned to one algorithm.

    :param kid: the key id put in the header of every token it signs.
    :param algorithm: the only algorithm it signs and verifies with.
    :param verifier: what PyJWT verifies with: the public key object, or the
        HMAC secret's bytes.
    :param signer: what PyJWT signs with (the private key object, or the
        secret), or ``None`` for a key that only verifies.
    :raises jwt.InvalidKeyError: if PyJWT refuses ``verifier`` for
        ``algorithm`` (an HMAC secret that looks like a PEM or JWK).
    """

    kid: str
    algorithm: str
    verifier: Any = field(repr=False)
    signer: Any = field(default=None, repr=False)
    #: PyJWT's algorithm object, and ``verifier`` and ``signer`` as it
    #: prepared them, once: ``jwt.decode`` and ``jwt.encode`` prepare the key
    #: again for every token (for an HMAC secret, a JSON parse and an attempt
    #: at loading it as a DER key: more than the HMAC itself).
    _pyjwt_algorithm: Any = field(init=False, repr=False)
    _prepared_key: Any = field(init=False, repr=False)
    _prepared_signer: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        algorithm = _algorithm(self.algorithm)
        object.__setattr__(self, "_pyjwt_algorithm", algorithm)
        object.__setattr__(self, "_prepared_key", algorithm.prepare_key(self.verifier))
        signer = None if self.signer is None else algorithm.prepare_key(self.signer)
        object.__setattr__(self, "_prepared_signer", signer)

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's over ``signing_input``, checked
        by PyJWT's implementation of :attr:`algorithm` (and only that one)."""
        return bool(
            self._pyjwt_algorithm.verify(signing_input, self._prepared_key, signature)
        )

    def sign(self, signing_input: bytes) -> bytes:
        """This key's signature over ``signing_input``, made by PyJWT's
        implementation of :attr:`algorithm` (what ``jwt.encode`` calls) with
        the key prepared at load.

        :raises ValueError: if the key only verifies.
        """
        if self._prepared_signer is None:
            raise ValueError(f"the key {self.kid!r} only verifies: it has no signer")
        signature: bytes = self._pyjwt_algorithm.sign(
            signing_input, self._prepared_signer
        )
        return signature

    @property
    def can_sign(self) -> bool:
        return self.signer is not None

    @property
    def is_hmac(self) -> bool:
        return self.algorithm in HMAC_ALGORITHMS

    def public_jwk(self) -> dict[str, Any] | None:
        """The public JWK of the key (``None`` for an HMAC secret, which is
        never published): the public members only, with ``kid``, ``alg`` and
        ``use``."""
        if self.is_hmac:
            return None
        jwk = _algorithm(self.algorithm).to_jwk(self.verifier, as_dict=True)
        public = {k: v for k, v in jwk.items() if k not in PRIVATE_JWK_MEMBERS}
        public.update(kid=self.kid, alg=self.algorithm, use="sig")
        return public

    @classmethod
    def hmac(cls, secret: bytes, algorithm: str, key: str) -> SigningKey:
        """The HMAC key of ``secret``.  Its ``kid`` is derived from a hash of
        the secret and the algorithm: stable across restarts and workers,
        different for every secret, and no help in guessing the secret (a
        token is already as good an oracle as a hash)."""
        minimum = HMAC_ALGORITHMS[algorithm]
        if len(secret) < minimum:
            raise ConfigurationError(
                f"{key}: an {algorithm} secret must be at least {minimum} bytes;"
                f" this one is {len(secret)}."
            )
        digest = hashlib.sha256(b"flask_tokenauth kid\0" + algorithm.encode() + b"\0")
        digest.update(secret)
        try:
            return cls(f"hs-{digest.hexdigest()[:16]}", algorithm, secret, secret)
        except jwt.InvalidKeyError as e:
            raise ConfigurationError(
                f"{key}: PyJWT refuses this {algorithm} secret ({e}). Use random"
                " bytes, e.g. python -c 'import secrets; print(secrets.token_hex(32))'."
            ) from None

    @classmethod
    def load(
        cls,
        source: object,
        key: str,
        *,
        algorithm: str | None = None,
        password: bytes | None = None,
        private: bool = False,
    ) -> SigningKey:
        """Load one key from ``source`` (see the module's docstring).

        :param key: the config key it came from, named in every error.
        :param algorithm: the algorithm to pin; by default the JWK's ``alg``
            or the one the key type implies.
        :param private: a private key (or an HMAC secret) is required.
        :raises ConfigurationError: if it cannot be read, is weak, or cannot
            do ``algorithm``.
        """
        obj, jwk_alg, kid = _read(source, key, password)
        if algorithm and jwk_alg and algorithm != jwk_alg:
            raise ConfigurationError(
                f"{key} is a JWK for {jwk_alg}, but TOKENAUTH_ALGORITHM is"
                f" {algorithm}: set one to match the other."
            )
        if isinstance(obj, bytes):  # an "oct" JWK: an HMAC secret
            alg = algorithm or jwk_alg
            if alg not in HMAC_ALGORITHMS:
                raise ConfigurationError(
                    f"{key} is an HMAC secret (a JWK of kty 'oct'); give it an"
                    f" 'alg' of {', '.join(HMAC_ALGORITHMS)}."
                )
            hmac = cls.hmac(obj, alg, key)
            return cls(kid or hmac.kid, alg, obj, obj)
        alg, public, signer = _check_asymmetric(obj, algorithm or jwk_alg, key, private)
        return cls(kid or _thumbprint(alg, public), alg, public, signer)


#: PyJWT's algorithm objects, made once (each call of
#: ``get_default_algorithms`` makes them all again).
_ALGORITHM_OBJECTS = get_default_algorithms()


def _algorithm(name: str) -> Any:
    return _ALGORITHM_OBJECTS[name]


def _thumbprint(algorithm: str, public: Any) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): the ``kid`` of an
    asymmetric key without one, the same wherever the key is loaded."""
    jwk = _algorithm(algorithm).to_jwk(public, as_dict=True)
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}
    members = required.get(jwk["kty"], ("crv", "kty", "x"))
    canonical = json.dumps(
        {m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _read(
    source: object, key: str, password: bytes | None
) -> tuple[Any, str | None, str | None]:
    """``(key object or HMAC bytes, the JWK's alg, the JWK's kid)``."""
    ec, ed25519, rsa = _crypto()
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
        return _read(text, key, password)
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


def _check_asymmetric(
    obj: Any, algorithm: str | None, key: str, private: bool
) -> tuple[str, Any, Any]:
    """``(algorithm, public key, private key or None)``, refusing what the
    key cannot do or does too weakly."""
    ec, ed25519, rsa = _crypto()
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


def _split_sources(value: object) -> list[object]:
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
                return _split_sources(json.loads(text))
            except ValueError:
                return [text]
        if text.startswith("-----BEGIN"):
            return [m.group(0) for m in _PEM_BLOCK.finditer(text)]
        parts = re.split(rf"[,{re.escape(os.pathsep)}]", text)
        return [p.strip() for p in parts if p.strip()]
    return [value]


class KeySet:
    """The keys of one app: the one that signs, and all that verify.

    :param signing: the current signing key (it also verifies).
    :param verifying: the other accepted keys: previous ones, announced
        ones.
    :raises ConfigurationError: if two keys share a ``kid``.
    """

    def __init__(
        self, signing: SigningKey, verifying: Iterable[SigningKey] = ()
    ) -> None:
        if not signing.can_sign:
            raise ValueError("the signing key needs its private half")
        self.signing = signing
        self._by_kid: dict[str, SigningKey] = {signing.kid: signing}
        for k in verifying:
            if k.kid in self._by_kid:
                raise ConfigurationError(
                    f"Two keys have the kid {k.kid!r}: each key of"
                    " TOKENAUTH_SIGNING_KEY and TOKENAUTH_VERIFY_KEYS must be"
                    " listed once, with its own kid."
                )
            self._by_kid[k.kid] = k
        jwks = {"keys": [j for k in self if (j := k.public_jwk()) is not None]}
        #: The JWKS document (public keys only), and its ETag.
        self.jwks_json = json.dumps(jwks, separators=(",", ":")).encode()
        self.jwks_etag = hashlib.sha256(self.jwks_json).hexdigest()[:32]

    def __iter__(self) -> Iterator[SigningKey]:
        return iter(self._by_kid.values())

    def __len__(self) -> int:
        return len(self._by_kid)

    def get(self, kid: object) -> SigningKey | None:
        """The key named ``kid``, or ``None`` (also for a non-string)."""
        return self._by_kid.get(kid) if isinstance(kid, str) else None

    @classmethod
    def from_config(
        cls,
        *,
        algorithm: str | None,
        access_secret: bytes | None,
        signing_key: object,
        password: bytes | None,
        verify_keys: object,
    ) -> KeySet:
        """The set the ``TOKENAUTH_*`` keys describe.

        Without ``TOKENAUTH_SIGNING_KEY`` the access secret signs with an
        HMAC algorithm (the zero-configuration default).  With one, the
        access secret, if still set, only verifies: the tokens an app
        signed before it moved to an asymmetric key stay valid until they
        expire.
        """
        verifying: list[SigningKey] = []
        if signing_key is None or signing_key == "":
            algorithm = algorithm or "HS256"
            if algorithm not in HMAC_ALGORITHMS:
                raise ConfigurationError(
                    f"TOKENAUTH_ALGORITHM={algorithm} signs with a private key:"
                    " set TOKENAUTH_SIGNING_KEY to its PEM or JWK (or a path to"
                    " one); without it, TOKENAUTH_ALGORITHM must be one of"
                    f" {', '.join(HMAC_ALGORITHMS)}."
                )
            assert access_secret is not None
            signing = SigningKey.hmac(
                access_secret, algorithm, "TOKENAUTH_ACCESS_SECRET"
            )
        else:
            if algorithm in HMAC_ALGORITHMS:
                raise ConfigurationError(
                    f"TOKENAUTH_ALGORITHM={algorithm} is an HMAC algorithm, which"
                    " signs with TOKENAUTH_ACCESS_SECRET: unset"
                    " TOKENAUTH_SIGNING_KEY, or set TOKENAUTH_ALGORITHM to one of"
                    f" {', '.join(ASYMMETRIC_ALGORITHMS)} (or leave it unset)."
                )
            signing = SigningKey.load(
                signing_key,
                "TOKENAUTH_SIGNING_KEY",
                algorithm=algorithm,
                password=password,
                private=True,
            )
            if access_secret is not None:
                verifying.append(
                    SigningKey.hmac(access_secret, "HS256", "TOKENAUTH_ACCESS_SECRET")
                )
        for i, source in enumerate(_split_sources(verify_keys)):
            verifying.append(
                SigningKey.load(
                    source, f"TOKENAUTH_VERIFY_KEYS[{i}]", password=password
                )
            )
        return cls(signing, verifying)


def generate(algorithm: str) -> Any:
    """A new private key for ``algorithm`` (one of
    :data:`ASYMMETRIC_ALGORITHMS`): Ed25519, P-256, or RSA of 2048 bits."""
    ec, ed25519, rsa = _crypto()
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


def private_jwk(key: SigningKey) -> dict[str, Any]:
    """The private JWK of ``key``, with its ``kid``, ``alg`` and ``use``."""
    jwk = _algorithm(key.algorithm).to_jwk(key.signer, as_dict=True)
    jwk.update(kid=key.kid, alg=key.algorithm, use="sig")
    return dict(jwk)
