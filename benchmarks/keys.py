"""Part 6: signing keys (issue 12).

Per algorithm (HS256, EdDSA, ES256, RS256): the cost of issuing one access
token and of verifying a never-seen one with ``AccessTokens``, each beside
PyJWT alone with a pre-loaded key object (``jwt.encode`` / ``jwt.decode``
with the same claims and checks); and the cost of a protected request with a
warm token (the verified-token cache) under EdDSA vs HS256.  Variants run
round-robin, ``batch`` calls each, the order rotating every round.
"""

from __future__ import annotations

import gc
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt

from . import apps
from .common import Context, median, paired_ratio, rotate
from .inprocess import Variant, wsgi_variant

ALGORITHMS = ("HS256", "EdDSA", "ES256", "RS256")


def _signing_key(algorithm: str) -> Any:
    """A fresh private key object (None for HS256: the app's secret)."""
    if algorithm == "HS256":
        return None
    from flask_tokenauth._keys import generate

    return generate(algorithm)


def _loop(name: str, call: Callable[[], Any]) -> Variant:
    def run(n: int) -> int:
        for _ in range(n):
            call()
        return 0

    return Variant(name, run)


def run(ctx: Context) -> None:
    from flask_tokenauth._state import get_state

    report = ctx.report
    rounds = ctx.p(11, 31)
    batch = ctx.p(50, 150)
    warmup = ctx.p(50, 150)
    per_list = rounds * batch + warmup
    variants: list[Variant] = []
    warm_apps: dict[str, Any] = {}
    for algorithm in ALGORITHMS:
        private = _signing_key(algorithm)
        app = apps.create_app(ctx.app_options("off", signing_key=private))
        tokens = get_state(app).access_tokens
        assert tokens.keys.signing.algorithm == algorithm
        signer = private if private is not None else apps.ACCESS_SECRET.encode()
        verifier = private.public_key() if private is not None else signer
        kid = tokens.keys.signing.kid

        def claims() -> dict[str, Any]:
            now = datetime.now(timezone.utc)
            return {
                "sub": str(ctx.user_id),
                "iat": int(now.timestamp()),
                "exp": int((now + timedelta(minutes=15)).timestamp()),
                "iss": apps.ISSUER,
                "aud": apps.AUDIENCE,
                "jti": uuid.uuid4().hex,
                "sid": ctx.session_id,
            }

        def pyjwt_issue(
            algorithm: str = algorithm, signer: Any = signer, kid: str = kid
        ) -> str:
            return jwt.encode(
                claims(),
                signer,
                algorithm=algorithm,
                headers={"typ": "at+jwt", "kid": kid},
            )

        def ours_issue(tokens: Any = tokens) -> str:
            return str(tokens.issue(ctx.user_id, ctx.session_id))

        variants.append(_loop(f"issue ours [{algorithm}]", ours_issue))
        variants.append(_loop(f"issue jwt.encode [{algorithm}]", pyjwt_issue))
        ours_tokens: Iterator[str] = iter([ours_issue() for _ in range(per_list)])
        ref_tokens: Iterator[str] = iter([ours_issue() for _ in range(per_list)])
        variants.append(
            _loop(
                f"verify ours [{algorithm}]",
                lambda t=tokens, it=ours_tokens: t.verify(next(it)),
            )
        )
        variants.append(
            _loop(
                f"verify jwt.decode [{algorithm}]",
                lambda a=algorithm, k=verifier, it=ref_tokens: jwt.decode(
                    next(it),
                    k,
                    algorithms=[a],
                    issuer=apps.ISSUER,
                    audience=apps.AUDIENCE,
                    options={"require": apps.REQUIRED_CLAIMS},
                ),
            )
        )
        if algorithm in ("HS256", "EdDSA"):
            warm = "Bearer " + ours_issue()
            warm_apps[algorithm] = app
            variants.append(
                wsgi_variant(
                    f"warm request [{algorithm}]",
                    app,
                    "/bench/ours",
                    itertools.repeat(warm),
                )
            )
    report.info(
        f"{len(variants)} variants, {rounds} rounds x {batch} calls each, interleaved"
    )
    for variant in variants:
        if variant.run(warmup):
            raise RuntimeError(f"{variant.name}: a warm-up request was not 200")

    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(rounds):
        for variant in rotate(variants, r):
            gc.collect()
            start = time.perf_counter()
            if variant.run(batch):
                raise RuntimeError(f"{variant.name}: a request was not 200")
            samples[variant.name].append((time.perf_counter() - start) / batch * 1e6)
    report.samples(samples)

    def ratio(a: str, b: str) -> float:
        return paired_ratio(samples[a], samples[b])

    report.info("median time per call (us); ours / PyJWT with a loaded key:")
    report.table(
        [
            (
                algorithm,
                f"{median(samples[f'issue ours [{algorithm}]']):.1f}",
                f"{median(samples[f'issue jwt.encode [{algorithm}]']):.1f}",
                f"{median(samples[f'verify ours [{algorithm}]']):.1f}",
                f"{median(samples[f'verify jwt.decode [{algorithm}]']):.1f}",
            )
            for algorithm in ALGORITHMS
        ],
        ["alg", "issue ours", "jwt.encode", "verify ours", "jwt.decode"],
    )
    for algorithm in ALGORITHMS:
        report.check(
            f"[{algorithm}] issue ours / jwt.encode",
            ratio(f"issue ours [{algorithm}]", f"issue jwt.encode [{algorithm}]"),
        )
        report.at_most(
            f"[{algorithm}] verify never-seen ours / jwt.decode",
            ratio(f"verify ours [{algorithm}]", f"verify jwt.decode [{algorithm}]"),
            1.1,
        )
    report.at_most(
        "warm protected request EdDSA / HS256",
        ratio("warm request [EdDSA]", "warm request [HS256]"),
        1.1,
    )
    for app in warm_apps.values():
        get_state(app).db.engine.dispose()
