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
text itself, a JWK as a dict, or a ``cryptography`` key object; reading
and checking them is :mod:`._keymaterial`'s job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt

# The constants and the key-making helpers are re-exported: the CLI and the
# tests name them here, where the keys are.
from ._keymaterial import ALGORITHMS as ALGORITHMS
from ._keymaterial import ASYMMETRIC_ALGORITHMS as ASYMMETRIC_ALGORITHMS
from ._keymaterial import HMAC_ALGORITHMS as HMAC_ALGORITHMS
from ._keymaterial import MIN_RSA_BITS as MIN_RSA_BITS
from ._keymaterial import PRIVATE_JWK_MEMBERS as PRIVATE_JWK_MEMBERS
from ._keymaterial import check_asymmetric, read, split_sources, thumbprint
from ._keymaterial import generate as generate
from ._keymaterial import private_pem as private_pem
from ._keymaterial import pyjwt_algorithm as algorithm_object
from .errors import ConfigurationError


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
        algorithm = algorithm_object(self.algorithm)
        object.__setattr__(self, "_pyjwt_algorithm", algorithm)
        object.__setattr__(self, "_prepared_key", algorithm.prepare_key(self.verifier))
        signer = None if self.signer is None else algorithm.prepare_key(self.signer)
        object.__setattr__(self, "_prepared_signer", signer)

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's over ``signing_input``, checked
        by PyJWT's implementation of :attr:`~SigningKey.algorithm` (and only
        that one)."""
        return bool(
            self._pyjwt_algorithm.verify(signing_input, self._prepared_key, signature)
        )

    def sign(self, signing_input: bytes) -> bytes:
        """This key's signature over ``signing_input``, made by PyJWT's
        implementation of :attr:`~SigningKey.algorithm` (what ``jwt.encode`` calls) with
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
        jwk = algorithm_object(self.algorithm).to_jwk(self.verifier, as_dict=True)
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
        obj, jwk_alg, kid = read(source, key, password)
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
        alg, public, signer = check_asymmetric(obj, algorithm or jwk_alg, key, private)
        return cls(kid or thumbprint(alg, public), alg, public, signer)


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
        for i, source in enumerate(split_sources(verify_keys)):
            verifying.append(
                SigningKey.load(
                    source, f"TOKENAUTH_VERIFY_KEYS[{i}]", password=password
                )
            )
        return cls(signing, verifying)


def private_jwk(key: SigningKey) -> dict[str, Any]:
    """The private JWK of ``key``, with its ``kid``, ``alg`` and ``use``."""
    jwk = algorithm_object(key.algorithm).to_jwk(key.signer, as_dict=True)
    jwk.update(kid=key.kid, alg=key.algorithm, use="sig")
    return dict(jwk)
