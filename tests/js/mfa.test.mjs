// Unit tests of the browser client's second factor (client.js): the
// `onMfaRequired` hook after a password login or a first `401
// MFA_REQUIRED`, the step-up retry after `401 REAUTHENTICATION_REQUIRED`,
// TOTP enrolment, and the passkey ceremonies' base64url conversions, against
// a fake API (MfaServer, over fake-server.mjs's) and a fake
// `navigator.credentials`.  The real thing, in Chromium against the Flask
// app: tests/test_browser_mfa.py.

import assert from 'node:assert/strict';
import { test as nodeTest } from 'node:test';

import {
  AuthError,
  createAuthClient,
  creationOptionsFromJSON,
  credentialToJSON,
  fromBase64url,
  requestOptionsFromJSON,
  toBase64url,
} from '../../flask_tokenauth/static/client.js';
import { EMAIL, FakeServer, ORIGIN, PASSWORD, USER_ID, makeToken } from './fake-server.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 5000 }, fn);
const API = `${ORIGIN}/api/data`;
const FRESH_API = `${ORIGIN}/api/fresh`;
const CODE = '123456';
const RECOVERY = 'k3m7q-x2ab9';

const json = (status, body) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
const error = (status, code) => json(status, { error: code.toLowerCase(), code });
const bodyOf = (record) => JSON.parse(new TextDecoder().decode(record.body) || 'null');

/** The fake API, with a user who has a second factor: a password login
 * answers a pending session; `/mfa/verify` takes CODE or RECOVERY;
 * `/api/fresh` wants an authentication newer than `freshAfter`. */
class MfaServer extends FakeServer {
  constructor(options) {
    super(options);
    this.level = { aal: 1, amr: ['pwd'], mfa_state: 'pending', auth_time: 1 };
    this.freshAfter = 1; // `auth_time` must be above this for /api/fresh
    this.passkeyUser = 'aGFuZGxl';
  }

  issue() {
    const iat = Math.floor(Date.now() / 1000);
    const claims = {
      sub: String(USER_ID),
      sid: this.sessionId,
      iat,
      exp: iat + this.lifetime,
      jti: `jti-${++this.serial}`,
      ...this.level,
    };
    if (claims.mfa_state === null) delete claims.mfa_state;
    const token = makeToken(claims);
    this.tokens.push(token);
    this.claims ??= new Map();
    this.claims.set(token, claims);
    return token;
  }

  login(record) {
    const answer = super.login(record);
    if (answer.status !== 200 || this.level.mfa_state !== 'pending') return answer;
    return answer.json().then((body) => json(200, { ...body, mfaRequired: true }));
  }

  /** The new refresh cookie of an upgraded session (the old one is dead). */
  rotateCookie() {
    this.usedCookies.add(this.liveCookie);
    this.liveCookie = `refresh-${++this.serial}`;
    this.jar = this.liveCookie;
  }

  upgraded(method) {
    this.level = { aal: 2, amr: ['pwd', method, 'mfa'], auth_time: this.level.auth_time + 1, mfa_state: null };
    this.rotateCookie();
    return json(200, { user: { id: USER_ID, email: EMAIL }, accessToken: this.issue() });
  }

  async fetch(input, init) {
    const request = input instanceof Request && init === undefined ? input : new Request(input, init);
    const path = new URL(request.url).pathname;
    const bearer = (request.headers.get('Authorization') || '').replace('Bearer ', '');
    const claims = this.claims?.get(bearer);
    const mine = {
      '/api/auth/mfa': () => json(200, { totp: { enabled: true }, passkeys: 1, recoveryCodesLeft: 10 }),
      '/api/auth/mfa/verify': (r) => {
        const { code, recoveryCode } = bodyOf(r);
        if (code === CODE) return this.upgraded('otp');
        if (recoveryCode === RECOVERY) return this.upgraded('otp');
        return error(400, 'MFA_CODE_INVALID');
      },
      '/api/auth/mfa/totp/enroll': () =>
        json(200, { secret: 'JBSWY3DPEHPK3PXP', otpauthUri: 'otpauth://totp/x', qrSvg: '<svg/>' }),
      '/api/auth/mfa/totp/confirm': (r) =>
        bodyOf(r).code === CODE
          ? (() => {
              const answer = this.upgraded('otp');
              return answer.json().then((b) => json(200, { ...b, recoveryCodes: [RECOVERY], recoveryCodesLeft: 1 }));
            })()
          : error(400, 'MFA_CODE_INVALID'),
      '/api/auth/reauthenticate': (r) => {
        const body = bodyOf(r);
        const ok = body.password === PASSWORD || body.code === CODE || body.credential?.id === 'cred-1';
        if (!ok) return error(403, body.password !== undefined ? 'WRONG_PASSWORD' : 'MFA_CODE_INVALID');
        this.level = { ...this.level, auth_time: this.freshAfter + 1 };
        return json(200, { accessToken: this.issue() });
      },
      '/api/auth/passkeys/register/options': () =>
        json(200, {
          challenge: toBase64url(new Uint8Array([1, 2, 3])),
          rp: { id: 'api.test', name: 'x' },
          user: { id: this.passkeyUser, name: EMAIL, displayName: EMAIL },
          pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
          excludeCredentials: [{ type: 'public-key', id: 'AAEC' }],
        }),
      '/api/auth/passkeys/register': (r) => json(201, { passkey: { id: bodyOf(r).credential.id, name: bodyOf(r).name } }),
      '/api/auth/passkeys/login/options': () => json(200, { challenge: 'BAUG', userVerification: 'required' }),
      '/api/auth/passkeys/verify/options': () =>
        json(200, { challenge: 'BwgJ', allowCredentials: [{ type: 'public-key', id: 'cred-1' }] }),
      '/api/auth/passkeys/login': (r) => {
        if (bodyOf(r).credential.id !== 'cred-1') return error(401, 'PASSKEY_INVALID');
        this.startSession();
        this.level = { aal: 2, amr: ['swk', 'user'], auth_time: 5, mfa_state: null };
        return json(200, { user: { id: USER_ID, email: EMAIL }, accessToken: this.issue() });
      },
      '/api/auth/passkeys/verify': (r) =>
        bodyOf(r).credential.id === 'cred-1' ? this.upgraded('swk') : error(401, 'PASSKEY_INVALID'),
    };
    if (path in mine) {
      this.handlers.set(path, mine[path]);
    } else if (path === '/api/data' || path === '/api/fresh') {
      this.handlers.set(path, (r) => {
        if (!claims) return error(401, 'TOKEN_INVALID');
        if (claims.mfa_state === 'pending') return error(401, 'MFA_REQUIRED');
        if (path === '/api/fresh' && claims.auth_time <= this.freshAfter) {
          return error(401, 'REAUTHENTICATION_REQUIRED');
        }
        return json(200, { path, aal: claims.aal, body: new TextDecoder().decode(r.body) });
      });
    }
    return super.fetch(request);
  }
}

function clientOf(t, server, options = {}) {
  const client = createAuthClient({
    baseUrl: ORIGIN,
    fetch: server.fetch,
    restore: false,
    crossTab: false,
    ...options,
  });
  t.after(() => client.close());
  return client;
}

/** A hook answering `answers` in turn, recording what it was asked. */
function hook(...answers) {
  const fn = async (context) => {
    fn.calls.push(context);
    return answers.shift() ?? null;
  };
  fn.calls = [];
  return fn;
}

/** A fake `navigator.credentials`: credential `cred-1`, recording the
 * options it was given. */
function fakeAuthenticator() {
  const bytes = (...b) => new Uint8Array(b).buffer;
  const seen = [];
  return {
    seen,
    async create(options) {
      seen.push(options);
      return {
        id: 'cred-1',
        rawId: bytes(0xfb, 0xff),
        type: 'public-key',
        authenticatorAttachment: 'platform',
        getClientExtensionResults: () => ({ credProps: { rk: true } }),
        response: {
          clientDataJSON: bytes(123, 125),
          attestationObject: bytes(1, 2),
          getTransports: () => ['internal'],
        },
      };
    },
    async get(options) {
      seen.push(options);
      return {
        id: 'cred-1',
        rawId: bytes(0xfb, 0xff),
        type: 'public-key',
        authenticatorAttachment: null,
        getClientExtensionResults: () => ({}),
        response: {
          clientDataJSON: bytes(123, 125),
          authenticatorData: bytes(3),
          signature: bytes(4, 5),
          userHandle: bytes(104, 97),
        },
      };
    },
  };
}

// -- the second factor at login ------------------------------------------------

test('login of a user with a factor: the hook gives a code, /mfa/verify upgrades the session', async (t) => {
  const server = new MfaServer();
  const onMfaRequired = hook({ code: CODE });
  const client = clientOf(t, server, { onMfaRequired });
  const user = await client.login(EMAIL, PASSWORD);
  assert.deepEqual(user, { id: USER_ID, email: EMAIL });
  assert.equal(onMfaRequired.calls.length, 1);
  assert.equal(onMfaRequired.calls[0].status.passkeys, 1); // what the user may offer
  assert.equal(onMfaRequired.calls[0].error, null);
  const verify = server.sent('/api/auth/mfa/verify');
  assert.equal(verify.length, 1);
  assert.deepEqual(bodyOf(verify[0]), { code: CODE });
  assert.equal(verify[0].credentials, 'include'); // the rotated cookie is kept
  assert.match(verify[0].authorization, /^Bearer /);
  assert.equal(client.session.claims.aal, 2);
  assert.equal(client.session.mfaState, null);
  assert.equal(client.mfaPending, false);
  assert.equal((await client.fetch(API)).status, 200);
});

test('a wrong code: the hook is asked again, with the error; a recovery code then works', async (t) => {
  const server = new MfaServer();
  const onMfaRequired = hook({ code: '000000' }, { recoveryCode: RECOVERY });
  const client = clientOf(t, server, { onMfaRequired });
  await client.login(EMAIL, PASSWORD);
  assert.equal(onMfaRequired.calls.length, 2);
  assert.ok(onMfaRequired.calls[1].error instanceof AuthError);
  assert.equal(onMfaRequired.calls[1].error.code, 'MFA_CODE_INVALID');
  assert.deepEqual(bodyOf(server.sent('/api/auth/mfa/verify')[1]), { recoveryCode: RECOVERY });
  assert.equal(client.session.claims.aal, 2);
});

test('no hook (or the hook gives up): login leaves a pending session, verifyMfa completes it', async (t) => {
  for (const options of [{}, { onMfaRequired: hook(null) }]) {
    const server = new MfaServer();
    const client = clientOf(t, server, options);
    await client.login(EMAIL, PASSWORD);
    assert.equal(client.mfaPending, true);
    assert.equal(client.session.mfaState, 'pending');
    assert.equal(server.sent('/api/auth/mfa/verify').length, 0);
    const refused = await client.fetch(API);
    assert.equal(refused.status, 401);
    assert.equal((await refused.json()).code, 'MFA_REQUIRED');
    await assert.rejects(client.verifyMfa({ code: '111111' }), { code: 'MFA_CODE_INVALID' });
    await client.verifyMfa({ code: CODE });
    assert.equal(client.mfaPending, false);
    assert.equal((await client.fetch(API)).status, 200);
  }
});

test('a first 401 MFA_REQUIRED (a restored pending session): one hook call for requests at once, each retried once', async (t) => {
  const server = new MfaServer();
  const client = clientOf(t, server);
  await client.login(EMAIL, PASSWORD); // pending, no hook yet
  const onMfaRequired = hook({ code: CODE });
  const hooked = clientOf(t, server, { onMfaRequired });
  await hooked.refresh(); // the same (pending) session, as after a reload
  assert.equal(hooked.mfaPending, true);
  const responses = await Promise.all([1, 2, 3].map((i) => hooked.fetch(API, { method: 'POST', body: `r${i}` })));
  assert.deepEqual(responses.map((r) => r.status), [200, 200, 200]);
  assert.deepEqual(
    (await Promise.all(responses.map((r) => r.json()))).map((b) => b.body),
    ['r1', 'r2', 'r3'],
  );
  assert.equal(onMfaRequired.calls.length, 1);
  assert.equal(onMfaRequired.calls[0].refused.code, 'MFA_REQUIRED');
  assert.equal(server.sent('/api/auth/mfa/verify').length, 1);
  assert.equal(server.sent('/api/data').length, 6);
});

test('the hook asks for a passkey: /passkeys/verify/options, credentials.get, /passkeys/verify', async (t) => {
  const server = new MfaServer();
  const credentials = fakeAuthenticator();
  const client = clientOf(t, server, { onMfaRequired: hook('passkey'), credentials });
  await client.login(EMAIL, PASSWORD);
  const [options] = credentials.seen;
  assert.deepEqual(new Uint8Array(options.publicKey.challenge), new Uint8Array([7, 8, 9]));
  assert.deepEqual(new Uint8Array(options.publicKey.allowCredentials[0].id), new Uint8Array(fromBase64url('cred-1')));
  const sent = bodyOf(server.sent('/api/auth/passkeys/verify')[0]).credential;
  assert.equal(sent.rawId, '-_8');
  assert.equal(sent.response.signature, 'BAU');
  assert.equal(sent.response.userHandle, 'aGE');
  assert.deepEqual(client.session.claims.amr, ['pwd', 'swk', 'mfa']);
});

// -- step-up -------------------------------------------------------------------

test('401 REAUTHENTICATION_REQUIRED: the hook gives the password, /reauthenticate, the request is retried once', async (t) => {
  const server = new MfaServer();
  server.level = { aal: 1, amr: ['pwd'], auth_time: 1, mfa_state: null };
  const onReauthenticationRequired = hook({ password: 'wrong' }, { password: PASSWORD });
  const client = clientOf(t, server, { onReauthenticationRequired });
  await client.login(EMAIL, PASSWORD);
  const response = await client.fetch(FRESH_API, { method: 'POST', body: 'sensitive' });
  assert.equal(response.status, 200);
  assert.equal((await response.json()).body, 'sensitive');
  assert.equal(onReauthenticationRequired.calls.length, 2);
  assert.equal(onReauthenticationRequired.calls[0].refused.code, 'REAUTHENTICATION_REQUIRED');
  assert.equal(onReauthenticationRequired.calls[1].error.code, 'WRONG_PASSWORD');
  assert.deepEqual(server.sent('/api/auth/reauthenticate').map(bodyOf), [
    { password: 'wrong' },
    { password: PASSWORD },
  ]);
  assert.equal(server.sent('/api/fresh').length, 2);
  assert.equal(client.session.claims.auth_time, 2);
});

test('step-up: a code or a passkey; no hook or a hook that gives up: the 401 as is', async (t) => {
  for (const [proof, expected] of [
    [{ code: CODE }, { code: CODE }],
    [{ passkey: true }, 'credential'],
  ]) {
    const server = new MfaServer();
    server.level = { aal: 2, amr: ['pwd', 'otp', 'mfa'], auth_time: 1, mfa_state: null };
    const client = clientOf(t, server, {
      onReauthenticationRequired: hook(proof),
      credentials: fakeAuthenticator(),
    });
    await client.login(EMAIL, PASSWORD);
    assert.equal((await client.fetch(FRESH_API)).status, 200);
    const sent = bodyOf(server.sent('/api/auth/reauthenticate')[0]);
    if (expected === 'credential') assert.equal(sent.credential.id, 'cred-1');
    else assert.deepEqual(sent, expected);
  }
  for (const options of [{}, { onReauthenticationRequired: hook(null) }]) {
    const server = new MfaServer();
    server.level = { aal: 1, amr: ['pwd'], auth_time: 1, mfa_state: null };
    const client = clientOf(t, server, options);
    await client.login(EMAIL, PASSWORD);
    const response = await client.fetch(FRESH_API);
    assert.equal(response.status, 401);
    assert.equal((await response.json()).code, 'REAUTHENTICATION_REQUIRED');
    assert.equal(server.sent('/api/fresh').length, 1);
    assert.equal(server.sent('/api/auth/reauthenticate').length, 0);
  }
});

test('changePassword refused REAUTHENTICATION_REQUIRED: the hook, /reauthenticate, the change once more', async (t) => {
  const server = new MfaServer();
  server.level = { aal: 1, amr: ['pwd'], auth_time: 1, mfa_state: null };
  server.handlers.set('/api/auth/password', (r) => {
    const claims = server.claims.get(r.authorization.replace('Bearer ', ''));
    if (claims.auth_time <= server.freshAfter) return error(401, 'REAUTHENTICATION_REQUIRED');
    server.rotateCookie();
    return json(200, { accessToken: server.issue() });
  });
  const onReauthenticationRequired = hook({ password: PASSWORD });
  const client = clientOf(t, server, { onReauthenticationRequired });
  await client.login(EMAIL, PASSWORD);
  await client.changePassword(PASSWORD, 'a new password 123');
  assert.equal(onReauthenticationRequired.calls.length, 1);
  assert.equal(server.sent('/api/auth/password').length, 2);
  assert.equal(client.session.claims.auth_time, 2);
  // Without a hook: the refusal, as is.
  const plain = clientOf(t, server);
  server.level = { ...server.level, auth_time: 1 };
  await plain.login(EMAIL, PASSWORD);
  await assert.rejects(plain.changePassword(PASSWORD, 'x'), { code: 'REAUTHENTICATION_REQUIRED' });
});

// -- enrolment and passkeys ----------------------------------------------------

test('TOTP enrolment: enrollTotp answers the secret and QR; confirmTotp upgrades and answers the recovery codes', async (t) => {
  const server = new MfaServer();
  server.level = { aal: 1, amr: ['pwd'], auth_time: 1, mfa_state: null };
  const client = clientOf(t, server);
  await client.login(EMAIL, PASSWORD);
  const { secret, otpauthUri, qrSvg } = await client.enrollTotp();
  assert.deepEqual([secret, otpauthUri, qrSvg], ['JBSWY3DPEHPK3PXP', 'otpauth://totp/x', '<svg/>']);
  await assert.rejects(client.confirmTotp('000000'), { code: 'MFA_CODE_INVALID' });
  const before = server.jar;
  assert.deepEqual(await client.confirmTotp(CODE), { recoveryCodes: [RECOVERY], recoveryCodesLeft: 1 });
  assert.notEqual(server.jar, before); // the rotated cookie was taken
  assert.equal(client.session.claims.aal, 2);
  assert.equal(client.session.user.email, EMAIL);
});

test('registerPasskey converts the options to bytes and the credential to base64url', async (t) => {
  const server = new MfaServer();
  server.level = { aal: 1, amr: ['pwd'], auth_time: 1, mfa_state: null };
  const credentials = fakeAuthenticator();
  const client = clientOf(t, server, { credentials });
  await client.login(EMAIL, PASSWORD);
  assert.deepEqual(await client.registerPasskey('Laptop'), { id: 'cred-1', name: 'Laptop' });
  const { publicKey } = credentials.seen[0];
  assert.deepEqual(new Uint8Array(publicKey.challenge), new Uint8Array([1, 2, 3]));
  assert.equal(new TextDecoder().decode(publicKey.user.id), 'handle');
  assert.deepEqual(new Uint8Array(publicKey.excludeCredentials[0].id), new Uint8Array([0, 1, 2]));
  const { credential, name } = bodyOf(server.sent('/api/auth/passkeys/register')[0]);
  assert.equal(name, 'Laptop');
  assert.deepEqual(credential, {
    id: 'cred-1',
    rawId: '-_8',
    type: 'public-key',
    authenticatorAttachment: 'platform',
    clientExtensionResults: { credProps: { rk: true } },
    response: { clientDataJSON: 'e30', attestationObject: 'AQI', transports: ['internal'] },
  });
});

test('loginWithPasskey: options (with the cookie), a discoverable assertion, a full session', async (t) => {
  const server = new MfaServer();
  const credentials = fakeAuthenticator();
  const client = clientOf(t, server, { credentials });
  const user = await client.loginWithPasskey();
  assert.deepEqual(user, { id: USER_ID, email: EMAIL });
  assert.equal(server.sent('/api/auth/passkeys/login/options')[0].credentials, 'include');
  assert.equal(credentials.seen[0].publicKey.allowCredentials, undefined);
  assert.equal(credentials.seen[0].publicKey.userVerification, 'required');
  assert.deepEqual(client.session.claims.amr, ['swk', 'user']);
  assert.equal(client.mfaPending, false);
});

test('no WebAuthn in this browser: NotSupportedError, nothing sent', async (t) => {
  const server = new MfaServer();
  const client = clientOf(t, server, { credentials: null });
  const saved = globalThis.navigator;
  Object.defineProperty(globalThis, 'navigator', { value: undefined, configurable: true });
  t.after(() => Object.defineProperty(globalThis, 'navigator', { value: saved, configurable: true }));
  await assert.rejects(client.loginWithPasskey(), { name: 'NotSupportedError' });
  assert.equal(server.sent('/api/auth/passkeys/login').length, 0);
});

test('base64url round trip of every byte; the JSON forms leave other fields alone', () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const text = toBase64url(all);
  assert.doesNotMatch(text, /[+/=]/);
  assert.deepEqual(new Uint8Array(fromBase64url(text)), all);
  assert.equal(toBase64url(all.subarray(250, 253)), Buffer.from([250, 251, 252]).toString('base64url'));
  const creation = creationOptionsFromJSON({ challenge: 'AA', user: { id: 'AQ', name: 'n' }, timeout: 5 });
  assert.equal(creation.timeout, 5);
  assert.equal(creation.user.name, 'n');
  assert.deepEqual(creation.excludeCredentials, []);
  const request = requestOptionsFromJSON({ challenge: 'AA', rpId: 'x' });
  assert.equal(request.rpId, 'x');
  assert.ok(!('allowCredentials' in request));
  const get = credentialToJSON({
    id: 'i',
    rawId: new Uint8Array([1]).buffer,
    type: 'public-key',
    response: {
      clientDataJSON: new Uint8Array([2]).buffer,
      authenticatorData: new Uint8Array([3]).buffer,
      signature: new Uint8Array([4]).buffer,
      userHandle: null,
    },
  });
  assert.deepEqual(get.response, { clientDataJSON: 'Ag', authenticatorData: 'Aw', signature: 'BA', userHandle: null });
  assert.deepEqual(get.clientExtensionResults, {});
});
