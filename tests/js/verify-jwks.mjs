// docs/signing-keys.md's Node snippet: verify one of our access tokens with the JWKS
// URL only (the `jose` package).  tests/test_second_service.py runs it:
//   node verify-jwks.mjs <jwks-url> <token>   → prints the claims as JSON
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksUrl, token] = process.argv.slice(2);

// Once per process: jose caches the key set and refetches it on an unknown kid.
const JWKS = createRemoteJWKSet(new URL(jwksUrl));

try {
  const { payload } = await jwtVerify(token, JWKS, {
    issuer: "flask-tokenauth",
    audience: "flask-tokenauth-client",
    algorithms: ["EdDSA"], // pinned: never taken from the token
    typ: "at+jwt",
  });
  console.log(JSON.stringify(payload));
} catch (error) {
  console.error(`${error.code}: ${error.message}`);
  process.exit(1);
}
