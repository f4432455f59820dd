"""Our verification of a never-seen token against ``jwt.decode``.

:meth:`AccessTokens.verify` no longer calls ``jwt.decode`` (see
:mod:`flask_tokenauth._jws`), so it is held to it here: on a corpus of
genuine, malformed and re-signed tokens, and on tokens mutated at random
(fixed seed), it may refuse more but never accepts what ``jwt.decode``
refuses with the same key, algorithm, issuer, audience, leeway and required
claims; what both accept has the same claims; and what it calls expired,
``jwt.decode`` calls expired too.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import pytest

from flask_tokenauth import TokenExpired, TokenInvalid
from flask_tokenauth._access import MAX_HEADER_KEYS, REQUIRED_CLAIMS, AccessTokens
from flask_tokenauth._config import Settings
from flask_tokenauth._keys import generate
from flask_tokenauth._sid import new_session_id

from .conftest import REFRESH_SECRET, base_config

LEEWAY = 30
SUB = "42"
SID = new_session_id(REFRESH_SECRET.encode(), SUB)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


@dataclass
class Verifier:
    """One app's access tokens (cache off: every call verifies in full) and
    ``jwt.decode`` configured as they are."""

    tokens: AccessTokens
    settings: Settings

    @property
    def key(self) -> Any:
        return self.tokens.keys.signing

    def header(self, **changes: Any) -> dict[str, Any]:
        header = {"alg": self.key.algorithm, "typ": "at+jwt", "kid": self.key.kid}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "sub": SUB,
            "iat": now,
            "exp": now + 15 * 60,
            "iss": self.settings.issuer,
            "aud": self.settings.audience,
            "jti": "0" * 32,
            "sid": SID,
        }
        claims.update(changes)
        return {k: v for k, v in resolve(claims).items() if v is not None}

    def sign(
        self, header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes
    ) -> str:
        """A compact JWS of exactly these bytes, signed with the real key
        (by hand: PyJWT would not sign most of them)."""
        raw_header = header if isinstance(header, bytes) else dumps(header)
        raw_payload = payload if isinstance(payload, bytes) else dumps(payload)
        signing_input = f"{b64(raw_header)}.{b64(raw_payload)}"
        signature = jwt.get_algorithm_by_name(self.key.algorithm).sign(
            signing_input.encode(), self.key.signer
        )
        return f"{signing_input}.{b64(signature)}"

    def ours(self, token: str) -> dict[str, Any] | str:
        try:
            return self.tokens.verify(token)
        except TokenExpired:
            return "expired"
        except TokenInvalid:
            return "invalid"

    def pyjwt(self, token: str) -> dict[str, Any] | str:
        try:
            return dict(
                jwt.decode(
                    token,
                    self.key.verifier,
                    algorithms=[self.key.algorithm],
                    issuer=self.settings.issuer,
                    audience=self.settings.audience,
                    leeway=self.settings.leeway,
                    options={"require": REQUIRED_CLAIMS},
                )
            )
        except jwt.ExpiredSignatureError:
            return "expired"
        except jwt.PyJWTError:
            return "invalid"

    def compare(self, token: str) -> tuple[dict[str, Any] | str, dict[str, Any] | str]:
        """``(ours, jwt.decode's)``, asserting that ours is no more lenient."""
        ours, theirs = self.ours(token), self.pyjwt(token)
        if isinstance(ours, dict):
            assert ours == theirs, f"accepted what jwt.decode did not: {token!r}"
        elif ours == "expired":
            assert theirs == "expired", f"expired, jwt.decode says {theirs}: {token!r}"
        return ours, theirs


ALGORITHMS = ("HS256", "EdDSA", "ES256", "RS256")


def make_verifier(algorithm: str) -> Verifier:
    config = base_config(TOKENAUTH_TOKEN_CACHE_SIZE=0, TOKENAUTH_LEEWAY=LEEWAY)
    if algorithm != "HS256":
        config["TOKENAUTH_SIGNING_KEY"] = generate(algorithm)
    settings = Settings.from_mapping(config)
    tokens = AccessTokens(settings)
    assert tokens.keys.signing.algorithm == algorithm
    return Verifier(tokens, settings)


@pytest.fixture(scope="module", params=ALGORITHMS)
def verifier(request: pytest.FixtureRequest) -> Verifier:
    return make_verifier(request.param)


@pytest.fixture(scope="module")
def hs256() -> Verifier:
    return make_verifier("HS256")


# -- The corpus ---------------------------------------------------------------


def replace_last(segment: str) -> str:
    """``segment`` with unused bits set in its last character: the same
    bytes to a lenient decoder, not the canonical encoding."""
    last = segment[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return segment[:-1] + alphabet[alphabet.index(last) + 1]


def corpus(v: Verifier) -> dict[str, tuple[Callable[[], str], str]]:
    """``name: (make the token, what we answer)``.  Each case names its
    answer, so one that silently stopped testing anything shows; each token
    is made when its test runs (the times in it are relative to then)."""
    h = v.header()

    def genuine() -> str:
        return v.tokens.issue(SUB, SID)

    def parts() -> list[str]:
        return genuine().split(".")

    def signed(**claims: Any) -> Callable[[], str]:
        return lambda: v.sign(h, v.claims(**claims))

    def headed(**changes: Any) -> Callable[[], str]:
        return lambda: v.sign(v.header(**changes), v.claims())

    def raw(header: bytes | None = None, **claims: Any) -> Callable[[], str]:
        """Signed bytes: ``header`` as given, the claims' JSON text passed
        through ``edit``."""
        edit = claims.pop("edit")
        return lambda: v.sign(
            dumps(h) if header is None else header, edit(dumps(v.claims(**claims)))
        )

    def after(text: bytes) -> Callable[[bytes], bytes]:
        return lambda payload: payload[:-1] + b", " + text + b"}"

    def unchanged(payload: bytes) -> bytes:
        return payload

    def with_alphabet() -> str:
        # Nine "?" (0x3F) encode as at least one whole "Pz8_": an "_" to swap.
        token = v.sign(h, v.claims(x="?" * 9))
        assert "_" in token
        return token.replace("-", "+").replace("_", "/")

    def spliced(edit: Callable[[list[str]], list[str]]) -> Callable[[], str]:
        return lambda: ".".join(edit(parts()))

    def pad(segment: str) -> str:
        return segment + "=" * (-len(segment) % 4)

    return {
        "genuine": (genuine, "ok"),
        "re-signed by hand": (signed(), "ok"),
        # Compact serialization and base64url.
        "two segments": (spliced(lambda p: p[:2]), "invalid"),
        "four segments": (spliced(lambda p: [*p, p[2]]), "invalid"),
        "empty signature": (spliced(lambda p: [p[0], p[1], ""]), "invalid"),
        "empty payload": (spliced(lambda p: [p[0], "", p[2]]), "invalid"),
        "empty header": (spliced(lambda p: ["", p[1], p[2]]), "invalid"),
        "padded signature": (spliced(lambda p: [p[0], p[1], pad(p[2])]), "invalid"),
        "excess padding": (spliced(lambda p: [p[0], p[1], p[2] + "==="]), "invalid"),
        "non-canonical signature": (
            spliced(lambda p: [p[0], p[1], replace_last(p[2])]),
            "invalid",
        ),
        "non-canonical payload": (
            spliced(lambda p: [p[0], replace_last(p[1]), p[2]]),
            "invalid",
        ),
        "standard alphabet": (with_alphabet, "invalid"),
        "space inside": (
            spliced(lambda p: [p[0], p[1][:5] + " " + p[1][5:], p[2]]),
            "invalid",
        ),
        "newline at the end": (lambda: genuine() + "\n", "invalid"),
        "non-ASCII": (spliced(lambda p: [p[0], p[1] + "é", p[2]]), "invalid"),
        "segment of 4n+1 characters": (
            spliced(lambda p: [p[0], p[1] + "A" * ((1 - len(p[1])) % 4 or 4), p[2]]),
            "invalid",
        ),
        # The header.
        "header not JSON": (raw(b"not json", edit=unchanged), "invalid"),
        "header a list": (raw(b"[]", edit=unchanged), "invalid"),
        "header with a BOM": (
            raw(b"\xef\xbb\xbf" + dumps(h), edit=unchanged),
            "invalid",
        ),
        "duplicate alg, none last": (
            raw(dumps(h)[:-1] + b', "alg": "none"}', edit=unchanged),
            "invalid",
        ),
        "duplicate alg, ours last": (
            raw(b'{"alg": "none", ' + dumps(h)[1:], edit=unchanged),
            "ok",
        ),
        "no alg": (headed(alg=None), "invalid"),
        "alg none": (headed(alg="none"), "invalid"),
        "alg in another case": (headed(alg=v.key.algorithm.lower()), "invalid"),
        "no kid": (headed(kid=None), "invalid"),
        "kid an integer": (headed(kid=1), "invalid"),
        "kid a list": (headed(kid=[v.key.kid]), "invalid"),
        "no typ": (headed(typ=None), "invalid"),
        "typ JWT": (headed(typ="JWT"), "invalid"),
        "typ in upper case": (headed(typ="AT+JWT"), "ok"),
        "typ with the media type prefix": (headed(typ="application/at+jwt"), "ok"),
        "crit b64 with b64 true": (headed(crit=["b64"], b64=True), "invalid"),
        "crit unknown": (headed(crit=["exp"]), "invalid"),
        "crit empty": (headed(crit=[]), "invalid"),
        "b64 false": (headed(crit=["b64"], b64=False), "invalid"),
        "embedded jwk": (headed(jwk={"kty": "oct", "k": "AAAA"}), "ok"),
        # The payload's encoding.
        "payload not JSON": (raw(edit=lambda _: b"not json"), "invalid"),
        "payload a list": (raw(edit=lambda _: b"[]"), "invalid"),
        "payload in UTF-16": (
            raw(edit=lambda p: p.decode().encode("utf-16-le")),
            "invalid",
        ),
        "payload with a BOM": (raw(edit=lambda p: b"\xef\xbb\xbf" + p), "invalid"),
        "payload not UTF-8": (raw(edit=after(b'"x": "\xff"')), "invalid"),
        "leading whitespace": (raw(edit=lambda p: b" " + p), "invalid"),
        "trailing whitespace": (raw(edit=lambda p: p + b" "), "invalid"),
        "trailing data": (raw(edit=lambda p: p + b"{}"), "invalid"),
        "NaN in a claim": (raw(edit=after(b'"x": NaN')), "invalid"),
        "nested too deep": (
            raw(edit=after(b'"x": ' + b"[" * 1500 + b"]" * 1500)),
            "invalid",
        ),
        "duplicate sub, ours last": (
            raw(edit=lambda p: b'{"sub": "7", ' + p[1:]),
            "ok",
        ),
        "non-ASCII text": (
            raw(
                edit=lambda p: json.dumps(
                    {**json.loads(p), "name": "Zoë"}, ensure_ascii=False
                ).encode()
            ),
            "ok",
        ),
        # Required claims, times, issuer and audience.
        **{f"no {k}": (signed(**{k: None}), "invalid") for k in REQUIRED_CLAIMS},
        "expired": (signed(iat=ago(3600), exp=ago(2700)), "expired"),
        "expired within the leeway": (signed(exp=ago(LEEWAY // 2)), "ok"),
        "expired beyond the leeway": (
            signed(iat=ago(600), exp=ago(2 * LEEWAY)),
            "expired",
        ),
        "future iat": (signed(iat=ago(-3600), exp=ago(-4000)), "invalid"),
        "future iat within the leeway": (signed(iat=ago(-LEEWAY // 2)), "ok"),
        "future nbf": (signed(nbf=ago(-3600)), "invalid"),
        "nbf null": (raw(edit=after(b'"nbf": null')), "invalid"),
        "float times": (
            signed(iat=ago(-0.5), exp=ago(-600.5), nbf=ago(0.5)),
            "ok",
        ),
        "exp a string": (signed(exp=ago(-600, text=True)), "invalid"),
        "exp true": (signed(exp=True), "invalid"),
        "exp infinite": (raw(edit=after(b'"exp": 1e999')), "invalid"),
        "exp huge": (signed(exp=10**30), "invalid"),
        "iat a string": (signed(iat=ago(0, text=True)), "invalid"),
        "iss wrong": (signed(iss="someone-else"), "invalid"),
        "iss a list": (signed(iss=[v.settings.issuer]), "invalid"),
        "aud wrong": (signed(aud="someone-else"), "invalid"),
        "aud empty": (signed(aud=""), "invalid"),
        "aud a list with ours": (signed(aud=["other", v.settings.audience]), "ok"),
        "aud a list without ours": (signed(aud=["other"]), "invalid"),
        "aud a list with a number": (signed(aud=[v.settings.audience, 1]), "invalid"),
        "aud an object": (signed(aud={v.settings.audience: 1}), "invalid"),
        "jti a number": (signed(jti=7), "invalid"),
        "sub a number": (signed(sub=42), "invalid"),
        "sub not canonical": (signed(sub="042"), "invalid"),
        "sid of another user": (signed(sid=new_session_id(b"x" * 64, SUB)), "invalid"),
        "lifetime too long": (signed(exp=ago(-(15 * 60 + LEEWAY + 60))), "invalid"),
    }


@dataclass(frozen=True)
class Ago:
    """A time ``seconds`` before the token is made (see
    :meth:`Verifier.claims`), as a number or as text."""

    seconds: float
    text: bool = False


def ago(seconds: float, text: bool = False) -> Any:
    return Ago(seconds, text)


def resolve(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with each :class:`Ago` replaced by its time."""
    now = int(time.time())
    for name, value in document.items():
        if isinstance(value, Ago):
            at = now - value.seconds
            document[name] = str(at) if value.text else at
    return document


CASES = list(corpus(make_verifier("HS256")))


@pytest.mark.parametrize("case", CASES)
def test_corpus(verifier: Verifier, case: str) -> None:
    make, expected = corpus(verifier)[case]
    ours, _theirs = verifier.compare(make())
    assert (ours if isinstance(ours, str) else "ok") == expected


# -- Random mutations (fixed seed) -------------------------------------------

#: Values a mutated claim or header parameter takes.
VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    0.5,
    10**20,
    1e300,
    "",
    "x",
    " ",
    "0",
    "42",
    "042",
    "none",
    "HS256",
    "EdDSA",
    "at+jwt",
    "JWT",
    [],
    [""],
    {},
    {"kty": "oct"},
    SID,
    SID.upper(),
    SUB,
    "flask-tokenauth",
    "flask-tokenauth-client",
    # Times: expired, expired within the leeway, in the future.
    Ago(3600),
    Ago(LEEWAY // 2),
    Ago(-60),
    Ago(-3600),
    Ago(-0.5),
]
CHARACTERS = "Aa0-_.=+/ \n\x00é\u2028"


def mutate_token(rng: random.Random, token: str) -> str:
    """One edit of the compact form: a character changed, added or removed,
    segments swapped or repeated."""
    choice = rng.randrange(5)
    i = rng.randrange(len(token))
    if choice == 0:
        return token[:i] + rng.choice(CHARACTERS) + token[i + 1 :]
    if choice == 1:
        return token[:i] + rng.choice(CHARACTERS) + token[i:]
    if choice == 2:
        return token[:i] + token[i + 1 :]
    segments = token.split(".")
    if choice == 3:
        rng.shuffle(segments)
    else:
        segments.insert(rng.randrange(4), rng.choice(segments))
    return ".".join(segments)


def mutate_document(
    rng: random.Random, document: dict[str, Any], names: list[str]
) -> None:
    for _ in range(rng.randrange(1, 3)):
        name = rng.choice(names)
        if rng.random() < 0.2:
            document.pop(name, None)
        else:
            document[name] = rng.choice(VALUES)


def serialize(rng: random.Random, document: dict[str, Any]) -> bytes:
    """JSON text of ``document``, written one of several ways, now and then
    with whitespace or a byte-order mark around it."""
    text = json.dumps(
        document,
        ensure_ascii=rng.random() < 0.5,
        separators=rng.choice([(",", ":"), (", ", ": ")]),
    )
    before = rng.choice(["", "", "", "", "", "", "", "", " ", "\ufeff"])
    after = rng.choice(["", "", "", "", "", "", "", "", "", "\n"])
    return (before + text + after).encode()


def mutants(v: Verifier, seed: int, count: int) -> Iterator[str]:
    rng = random.Random(seed)
    header_names = ["alg", "typ", "kid", "crit", "b64", "jwk", "x5u"]
    # The times weigh more: their checks are the most numerous.
    claim_names = [*REQUIRED_CLAIMS, "nbf", "x", "exp", "exp", "iat", "nbf"]
    for _ in range(count):
        if rng.random() < 0.4:
            yield mutate_token(rng, v.tokens.issue(SUB, SID))
            continue
        header, claims = v.header(), v.claims()
        if rng.random() < 0.3:
            mutate_document(rng, header, header_names)
        if rng.random() < 0.8:
            mutate_document(rng, claims, claim_names)
        yield v.sign(serialize(rng, resolve(header)), serialize(rng, resolve(claims)))


@pytest.mark.parametrize(
    ("algorithm", "count"), [("HS256", 10000), ("EdDSA", 1500), ("ES256", 1500)]
)
def test_random_mutations(algorithm: str, count: int) -> None:
    v = make_verifier(algorithm)
    outcomes: Counter[tuple[str, str]] = Counter()
    for token in mutants(v, seed=11, count=count):
        ours, theirs = v.compare(token)
        outcomes[outcome(ours), outcome(theirs)] += 1
    # The mutants reach every outcome: the comparison above was made of
    # tokens accepted by both, refused by both, and refused by us alone.
    assert outcomes["ok", "ok"] >= count // 20, outcomes
    assert outcomes["expired", "expired"] >= 1, outcomes
    assert outcomes["invalid", "invalid"] >= count // 5, outcomes
    assert outcomes["invalid", "ok"] >= count // 100, outcomes


def outcome(result: dict[str, Any] | str) -> str:
    return "ok" if isinstance(result, dict) else result


def test_expired_and_invalid_are_told_apart(hs256: Verifier) -> None:
    """The control of the comparison: a real token is accepted, and the
    same claims expired are ``expired`` for both, not just refused."""
    now = int(time.time())
    token = hs256.sign(hs256.header(), hs256.claims(iat=now - 3600, exp=now - 2700))
    assert hs256.compare(token) == ("expired", "expired")
    assert hs256.settings.leeway == timedelta(seconds=LEEWAY)


def test_a_header_is_remembered_only_once_its_signature_passed(
    hs256: Verifier,
) -> None:
    """The header segments whose key is remembered are few: forged headers
    (with a valid key id, but no valid signature) must not take the places
    of real ones."""
    remembered = hs256.tokens._header_keys
    remembered.clear()
    claims = hs256.claims()
    for i in range(2 * MAX_HEADER_KEYS):
        header, payload, _ = hs256.sign(hs256.header(x=i), claims).split(".")
        assert hs256.ours(f"{header}.{payload}.{'A' * 43}") == "invalid"
    assert remembered == {}
    genuine = hs256.tokens.issue(SUB, SID)
    assert isinstance(hs256.ours(genuine), dict)
    assert list(remembered) == [genuine.split(".")[0].encode()]


def test_a_proven_session_is_proven_for_its_own_user_only() -> None:
    """Session ids proven once are remembered (with the cache on), each for
    the user it was proven for: another user's token naming it is still
    refused, as it is on first sight."""
    settings = Settings.from_mapping(base_config(TOKENAUTH_TOKEN_CACHE_SIZE=8))
    v = Verifier(AccessTokens(settings), settings)
    other = v.sign(v.header(), v.claims(sub="43"))
    assert v.ours(other) == "invalid"
    assert isinstance(v.ours(v.tokens.issue(SUB, SID)), dict)
    assert v.tokens._session_owners == {SID: SUB}
    assert v.ours(v.sign(v.header(), v.claims(sub="43"))) == "invalid"
    assert isinstance(v.ours(v.sign(v.header(), v.claims(jti="1" * 32))), dict)
    # Bounded like the cache, and off with it.
    for _ in range(20):
        v.ours(v.tokens.issue(SUB, new_session_id(REFRESH_SECRET.encode(), SUB)))
    assert 0 < len(v.tokens._session_owners) <= 8
    assert make_verifier("HS256").tokens._session_owners == {}
