// Unit tests of the browser client (flask_tokenauth/static/client.js) in
// Node, against the fake server of fake-server.mjs.  Run: node --test tests/js/
// The real-browser tests against the Flask app are tests/test_browser.py.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test as nodeTest } from 'node:test';

import {
  AuthError,
  createAuthClient,
  decodeToken,
  takeLinkToken,
} from '../../flask_tokenauth/static/client.js';
import {
  EMAIL,
  FakeServer,
  ORIGIN,
  PASSWORD,
  USER_ID,
  base64url,
  deferred,
  makeToken,
  sleep,
  waitFor,
} from './fake-server.mjs';

/** Every test fails, instead of hanging the run, after 5 s. */
const test = (name, fn) => nodeTest(name, { timeout: 5000 }, fn);

const MODULE_URL = new URL('../../flask_tokenauth/static/client.js', import.meta.url).href;
const API = `${ORIGIN}/api/data`;

/** A client of `server`, closed when the test ends; one tab, no restore. */
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

/** Records the calls of a callback. */
function spy() {
  const calls = [];
  const fn = (...args) => {
    calls.push(args);
  };
  fn.calls = calls;
  return fn;
}

async function loggedIn(t, server, options) {
  const client = clientOf(t, server, options);
  await client.login(EMAIL, PASSWORD);
  return client;
}

// -- module ------------------------------------------------------------------

test('imports with no window, document, navigator or location (SSR, bundlers)', () => {
  const code = `
    delete globalThis.navigator;
    for (const name of ['window', 'document', 'navigator', 'location', 'localStorage']) {
      if (name in globalThis) throw new Error(name + ' is defined');
    }
    globalThis.fetch = () => { throw new Error('fetch called at creation'); };
    const m = await import(${JSON.stringify(MODULE_URL)});
    const client = m.createAuthClient({ restore: false, baseUrl: 'http://api.test' });
    const ready = await client.ready;
    if (ready !== null || client.session !== null || client.isAuthenticated !== false) {
      throw new Error('not signed out');
    }
    if (client.version !== '1') throw new Error('version ' + client.version);
    client.close();
    console.log(Object.keys(m).sort().join(','));
  `;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    timeout: 10000,
  });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), 'AuthError,createAuthClient,creationOptionsFromJSON,credentialToJSON,decodeToken,fromBase64url,requestOptionsFromJSON,takeLinkToken,toBase64url');
});

test('decodeToken reads base64url (- and _) and UTF-8 payloads', () => {
  const claims = { sub: '7', sid: 's', name: 'Zoë ÿÿÿ ~~~??? >>> 日本語 ✓', iat: 1, exp: 2 };
  const payload = base64url(claims);
  // The payload must exercise both URL-safe characters and no padding.
  assert.match(payload, /-/);
  assert.match(payload, /_/);
  assert.doesNotMatch(payload, /=/);
  assert.deepEqual(decodeToken(makeToken(claims)), claims);
  assert.throws(() => decodeToken('not-a-jwt'), TypeError);
});

// -- login and the Authorization header ---------------------------------------

test('login keeps the token in memory and sends it to the API origin only', async (t) => {
  const server = new FakeServer();
  const changes = spy();
  const auth = clientOf(t, server, { onSessionChange: changes });
  assert.equal(auth.session, null);

  const user = await auth.login(EMAIL, PASSWORD);
  assert.deepEqual(user, { id: USER_ID, email: EMAIL });
  const token = server.tokens[0];
  assert.equal(await auth.getAccessToken(), token);
  assert.equal(auth.isAuthenticated, true);
  assert.equal(auth.session.userId, String(USER_ID));
  assert.equal(auth.session.sessionId, server.sessionId);
  assert.deepEqual(auth.session.user, user);
  assert.deepEqual(changes.calls.map(([s, reason]) => [s?.userId, reason]), [['42', 'login']]);

  const res = await auth.fetch(API);
  assert.equal(res.status, 200);
  assert.equal(server.sent('/api/data')[0].authorization, `Bearer ${token}`);

  for (const url of ['http://other.test/x', 'https://api.test/x', 'http://api.test:8080/x']) {
    const other = await auth.fetch(url);
    assert.equal(other.status, 200);
    const seen = server.requests.at(-1);
    assert.equal(`${seen.origin}${seen.path}`, url);
    assert.equal(seen.authorization, null, `token leaked to ${url}`);
  }
});

test('a request that has an Authorization header is passed through untouched', async (t) => {
  const server = new FakeServer();
  const auth = await loggedIn(t, server);
  // The server refuses the foreign token TOKEN_INVALID, a code the client
  // would otherwise refresh and retry after.
  const res = await auth.fetch(API, { headers: { Authorization: 'Bearer custom' } });
  assert.equal(res.status, 401);
  assert.equal((await res.json()).code, 'TOKEN_INVALID');
  assert.deepEqual(
    server.sent('/api/data').map((r) => r.authorization),
    ['Bearer custom'],
  );
  assert.equal(server.refreshes.length, 0);
});

test('login with a wrong password rejects with an AuthError and no session', async (t) => {
  const server = new FakeServer();
  const auth = clientOf(t, server);
  await assert.rejects(auth.login(EMAIL, 'wrong'), (error) => {
    assert.ok(error instanceof AuthError);
    assert.equal(error.status, 401);
    assert.equal(error.code, 'INVALID_CREDENTIALS');
    return true;
  });
  assert.equal(auth.session, null);
});

// -- refresh on TOKEN_EXPIRED -------------------------------------------------

test('10 concurrent TOKEN_EXPIRED answers: one refresh, each request retried once', async (t) => {
  const server = new FakeServer({ refreshDelay: 20 });
  const auth = await loggedIn(t, server);
  const [oldToken] = server.tokens;
  server.expireAll();

  const ids = Array.from({ length: 10 }, (_, i) => String(i));
  const responses = await Promise.all(ids.map((id) => auth.fetch(API, { headers: { 'X-Id': id } })));

  assert.deepEqual(responses.map((r) => r.status), ids.map(() => 200));
  assert.equal(server.refreshes.length, 1);
  const newToken = server.tokens[1];
  assert.equal(await auth.getAccessToken(), newToken);
  for (const id of ids) {
    const sends = server.sent('/api/data').filter((r) => r.id === id);
    assert.deepEqual(
      sends.map((r) => r.authorization),
      [`Bearer ${oldToken}`, `Bearer ${newToken}`],
      `request ${id}`,
    );
  }
});

test('a TOKEN_EXPIRED arriving after the refresh retries without a second refresh', async (t) => {
  const server = new FakeServer();
  const auth = await loggedIn(t, server);
  const [oldToken] = server.tokens;
  server.expireAll();
  const hold = deferred();
  server.holds.set('/api/slow', hold.promise);

  const slow = auth.fetch(`${ORIGIN}/api/slow`);
  await waitFor(() => server.sent('/api/slow').length === 1, 2000, 'the slow request');
  const fast = await auth.fetch(API);
  assert.equal(fast.status, 200);
  assert.equal(server.refreshes.length, 1);

  hold.resolve();
  assert.equal((await slow).status, 200);
  assert.equal(server.refreshes.length, 1);
  assert.deepEqual(
    server.sent('/api/slow').map((r) => r.authorization),
    [`Bearer ${oldToken}`, `Bearer ${server.tokens[1]}`],
  );
});

test('a request made during a refresh waits for it and sends the new token', async (t) => {
  const server = new FakeServer({ refreshDelay: 30 });
  const auth = await loggedIn(t, server);
  server.expireAll();
  const refreshed = auth.refresh();
  const res = await auth.fetch(API);
  assert.equal(await refreshed, true);
  assert.equal(res.status, 200);
  assert.deepEqual(
    server.sent('/api/data').map((r) => r.authorization),
    [`Bearer ${server.tokens[1]}`],
  );
  assert.equal(server.refreshes.length, 1);
});

test('a request is retried at most once', async (t) => {
  const server = new FakeServer();
  const auth = await loggedIn(t, server);
  server.alwaysExpired = true;

  const res = await auth.fetch(API);
  assert.equal(res.status, 401);
  assert.equal((await res.json()).code, 'TOKEN_EXPIRED');
  assert.equal(server.refreshes.length, 1);
  assert.equal(server.sent('/api/data').length, 2);
});

test('a 401 with another code does not refresh, and its body is still unread', async (t) => {
  const server = new FakeServer();
  const auth = await loggedIn(t, server);
  for (const code of ['INVALID_CREDENTIALS', 'TOKEN_MISSING']) {
    server.handlers.set(`/api/${code}`, () =>
      Response.json({ error: 'no', code }, { status: 401 }),
    );
    const res = await auth.fetch(`${ORIGIN}/api/${code}`);
    assert.equal(res.status, 401);
    assert.equal(res.bodyUsed, false);
    assert.deepEqual(await res.json(), { error: 'no', code });
    assert.equal(server.sent(`/api/${code}`).length, 1, code);
  }
  server.handlers.set('/api/html', () => new Response('<h1>Unauthorized</h1>', { status: 401 }));
  const html = await auth.fetch(`${ORIGIN}/api/html`);
  assert.equal(await html.text(), '<h1>Unauthorized</h1>');
  assert.equal(server.sent('/api/html').length, 1);
  assert.equal(server.refreshes.length, 0);
});

test('a POST with a JSON body is retried with the same body', async (t) => {
  const server = new FakeServer();
  const auth = await loggedIn(t, server);
  server.expireAll();
  const body = JSON.stringify({ note: 'Zoë ✓', n: [1, 2, 3] });

  const res = await auth.fetch(`${ORIGIN}/api/echo`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body,
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).body, body);
  const sends = server.sent('/api/echo');
  assert.equal(sends.length, 2);
  assert.equal(sends[1].authorization, `Bearer ${server.tokens[1]}`);
  for (const send of sends) {
    assert.equal(send.method, 'POST');
    assert.equal(new TextDecoder().decode(send.body), body);
  }
});

test('a POST with a ReadableStream body is retried with the same bytes', async (t) => {
  const server = new FakeServer();
  const auth = await loggedIn(t, server);
  server.expireAll();
  const chunks = [new Uint8Array([0, 1, 2, 255]), new TextEncoder().encode('streamed ✓')];
  const expected = Buffer.concat(chunks);
  const stream = new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });

  const res = await auth.fetch(`${ORIGIN}/api/upload`, {
    method: 'POST',
    body: stream,
    duplex: 'half',
  });
  assert.equal(res.status, 200);
  const sends = server.sent('/api/upload');
  assert.equal(sends.length, 2);
  assert.equal(sends[1].authorization, `Bearer ${server.tokens[1]}`);
  for (const send of sends) assert.deepEqual(Buffer.from(send.body), expected);
});

// -- when the refresh fails ---------------------------------------------------

test('refresh answered 401: session ended, onLogout once, caller gets the 401', async (t) => {
  const server = new FakeServer();
  const onLogout = spy();
  const auth = await loggedIn(t, server, { onLogout });
  server.expireAll();
  server.refreshMode = 'revoked';

  const res = await auth.fetch(API);
  assert.equal(res.status, 401);
  assert.equal((await res.json()).code, 'TOKEN_EXPIRED');
  assert.equal(auth.session, null);
  assert.equal(await auth.getAccessToken(), null);
  assert.deepEqual(onLogout.calls, [['session-ended']]);
  assert.equal(server.refreshes.length, 1);
  assert.equal(server.refreshes[0].status, 401);
  assert.equal(server.sent('/api/data').length, 1);
});

test('a refresh names the session it holds; none at restore', async (t) => {
  const server = new FakeServer();
  const restoring = clientOf(t, server, { restore: true });
  await restoring.ready;
  assert.equal(server.refreshes[0].session, null); // no session yet: no name
  const auth = await loggedIn(t, server);
  const held = auth.session.sessionId;
  assert.match(held, /^sid-/);
  assert.equal(await auth.refresh(), true);
  assert.equal(server.refreshes.at(-1).session, held);
});

test('REFRESH_TOKEN_AMBIGUOUS: session ended as a cookie conflict, then a login works', async (t) => {
  const server = new FakeServer();
  const onLogout = spy();
  const auth = await loggedIn(t, server, { onLogout });
  server.expireAll();
  server.refreshMode = 'ambiguous';

  const res = await auth.fetch(API);
  assert.equal(res.status, 401);
  assert.equal(auth.session, null);
  assert.deepEqual(onLogout.calls, [['cookie-conflict']]);
  server.refreshMode = 'ok';
  await auth.login(EMAIL, PASSWORD);
  assert.equal(await auth.refresh(), true);
});

for (const [name, mode] of [
  ['503', 503],
  ['a network error', 'network-error'],
]) {
  test(`refresh failing with ${name}: session kept, caller gets the 401`, async (t) => {
    const server = new FakeServer();
    const onLogout = spy();
    const auth = await loggedIn(t, server, { onLogout });
    const session = auth.session;
    const [token] = server.tokens;
    server.expireAll();
    server.refreshMode = mode;

    const res = await auth.fetch(API);
    assert.equal(res.status, 401);
    assert.equal((await res.json()).code, 'TOKEN_EXPIRED');
    assert.equal(auth.session, session);
    assert.equal(await auth.getAccessToken(), token);
    assert.deepEqual(onLogout.calls, []);
    assert.equal(server.refreshes.length, 1);
    assert.equal(server.sent('/api/data').length, 1);
    // A later call tries again, and succeeds once the server is back.
    server.refreshMode = 'ok';
    assert.equal((await auth.fetch(API)).status, 200);
    assert.equal(server.refreshes.length, 2);
  });
}

// -- proactive refresh --------------------------------------------------------

test('refreshes by itself before expiry; not with refreshAhead: false', async (t) => {
  // Both clients run at once to keep the test short.  Tokens live 2 s;
  // refreshAhead 0.5 means a refresh 1.5 s after receipt, with no request.
  const ahead = new FakeServer({ lifetime: 2 });
  const never = new FakeServer({ lifetime: 2 });
  const start = performance.now();
  const [a, b] = await Promise.all([
    loggedIn(t, ahead, { refreshAhead: 0.5 }),
    loggedIn(t, never, { refreshAhead: false }),
  ]);
  const until = (ms) => sleep(ms - (performance.now() - start));
  assert.equal(a.session.lifetime, 2000);
  assert.ok(a.session.expiresAt > Date.now() + 1500);

  await until(1250);
  assert.equal(ahead.refreshes.length, 0, 'refreshed too early');
  await until(1800);
  assert.equal(ahead.refreshes.length, 1);
  assert.equal(ahead.refreshes[0].status, 200);
  const after = ahead.refreshes[0].start - start;
  assert.ok(after >= 1400 && after < 1800, `refreshed after ${after} ms`);
  assert.equal(await a.getAccessToken(), ahead.tokens[1]);

  // Past the token's expiry: nothing without refreshAhead.
  await until(2300);
  assert.equal(never.refreshes.length, 0);
  assert.equal(await b.getAccessToken(), never.tokens[0]);
  assert.equal(ahead.refreshes.length, 1);
  // No request was made by either.
  assert.equal(ahead.sent('/api/data').length + never.sent('/api/data').length, 0);
});

// -- restore ------------------------------------------------------------------

test('restore: one /refresh at creation, ready resolves to the session', async (t) => {
  const server = new FakeServer();
  server.startSession();
  const onLogout = spy();
  const changes = spy();
  const auth = clientOf(t, server, {
    restore: undefined, // the default: restore
    onLogout,
    onSessionChange: changes,
  });
  const session = await auth.ready;
  assert.notEqual(session, null);
  assert.equal(session, auth.session);
  assert.equal(session.userId, String(USER_ID));
  assert.equal(session.sessionId, server.sessionId);
  assert.equal(session.user, null);
  assert.equal(server.refreshes.length, 1);
  assert.equal(server.refreshes[0].status, 200);
  assert.deepEqual(changes.calls.map(([, reason]) => reason), ['restore']);
  assert.equal(await auth.getAccessToken(), server.tokens[0]);
  await sleep(10);
  assert.equal(server.refreshes.length, 1);
  assert.deepEqual(onLogout.calls, []);
});

test('restore without a cookie: ready resolves to null, onLogout not called', async (t) => {
  const server = new FakeServer();
  const onLogout = spy();
  const auth = clientOf(t, server, { restore: undefined /* the default */, onLogout });
  assert.equal(await auth.ready, null);
  assert.equal(auth.session, null);
  assert.equal(server.refreshes.length, 1);
  assert.equal(server.refreshes[0].status, 401);
  assert.deepEqual(onLogout.calls, []);
});

// -- logout -------------------------------------------------------------------

test('logout posts /logout with credentials and clears the session', async (t) => {
  const server = new FakeServer();
  const changes = spy();
  const onLogout = spy();
  const auth = await loggedIn(t, server, { onSessionChange: changes, onLogout });

  await auth.logout();
  const [sent] = server.sent('/api/auth/logout');
  assert.equal(sent.method, 'POST');
  assert.equal(sent.credentials, 'include');
  assert.equal(server.jar, null);
  assert.equal(auth.session, null);
  assert.equal(auth.isAuthenticated, false);
  assert.deepEqual(changes.calls.at(-1), [null, 'logout']);
  assert.deepEqual(onLogout.calls, [['logout']]);

  await auth.fetch(API);
  assert.equal(server.sent('/api/data')[0].authorization, null);
});

// -- password change ----------------------------------------------------------

/** The server's /password: every session ends, a new one starts (cookie set
 * for a request with credentials only, as a browser stores it). */
function passwordChange(server) {
  return (record) => {
    const { currentPassword } = JSON.parse(new TextDecoder().decode(record.body));
    if (currentPassword !== PASSWORD) {
      return new Response(JSON.stringify({ error: 'wrong', code: 'WRONG_PASSWORD' }), {
        status: 403,
        headers: { 'Content-Type': 'application/json' },
      });
    }
    const oldCookie = server.jar;
    server.startSession();
    if (record.credentials !== 'include') server.jar = oldCookie;
    return new Response(JSON.stringify({ accessToken: server.issue() }), {
      status: 200,
      headers: { 'Content-Type': 'application/json' },
    });
  };
}

test('changePassword adopts the new session, keeps the user, stores the cookie', async (t) => {
  const server = new FakeServer();
  server.handlers.set('/api/auth/password', passwordChange(server));
  const changes = spy();
  const auth = await loggedIn(t, server, { onSessionChange: changes });
  const before = auth.session;
  const bearer = `Bearer ${await auth.getAccessToken()}`;

  await auth.changePassword(PASSWORD, 'new password 456');
  const [sent] = server.sent('/api/auth/password');
  assert.equal(sent.authorization, bearer);
  assert.equal(sent.credentials, 'include');
  assert.notEqual(auth.session.sessionId, before.sessionId);
  assert.equal(auth.session.sessionId, server.sessionId);
  assert.deepEqual(auth.session.user, before.user);
  assert.equal(server.jar, server.liveCookie);
  assert.deepEqual(changes.calls.at(-1)[1], 'password-changed');
  // The new session's cookie refreshes.
  await auth.refresh();
  assert.equal(server.refreshes.at(-1).status, 200);

  await assert.rejects(auth.changePassword('wrong', 'x'.repeat(12)), (e) => e.code === 'WRONG_PASSWORD');
  assert.equal(auth.session.sessionId, server.sessionId);
});

// -- several tabs -------------------------------------------------------------

function tab(t, server, options = {}) {
  return clientOf(t, server, { crossTab: true, ...options });
}

test('cross-tab: login in one tab signs the other in, logout signs it out', async (t) => {
  const server = new FakeServer(); // one cookie jar: one browser
  const aLogout = spy();
  const bLogout = spy();
  const bChanges = spy();
  const a = tab(t, server, { onLogout: aLogout });
  const b = tab(t, server, { onLogout: bLogout, onSessionChange: bChanges });

  await a.login(EMAIL, PASSWORD);
  await waitFor(() => b.session !== null, 2000, 'the login in the other tab');
  assert.deepEqual(bChanges.calls.map(([, reason]) => reason), ['other-tab']);
  assert.equal(b.session.sessionId, a.session.sessionId);
  assert.deepEqual(b.session.user, { id: USER_ID, email: EMAIL });
  assert.equal(await b.getAccessToken(), server.tokens[0]);

  await a.logout();
  await waitFor(() => b.session === null, 2000, 'the logout in the other tab');
  assert.deepEqual(bLogout.calls, [['other-tab']]);
  assert.deepEqual(aLogout.calls, [['logout']]);
  assert.deepEqual(bChanges.calls.at(-1), [null, 'other-tab']);
});

/** Two tabs of one browser, signed in, whose tokens have just expired;
 * both send a request at once.  Returns the two responses. */
async function bothExpire(t, server, options) {
  const a = tab(t, server, options);
  const b = tab(t, server, options);
  await a.login(EMAIL, PASSWORD);
  await waitFor(() => b.session !== null, 2000, 'the login in the other tab');
  server.expireAll();
  return Promise.all([
    a.fetch(API, { headers: { 'X-Id': 'a' } }),
    b.fetch(API, { headers: { 'X-Id': 'b' } }),
  ]);
}

function assertSerializedRefreshes(server, responses) {
  assert.deepEqual(responses.map((r) => r.status), [200, 200]);
  assert.ok(server.refreshes.length >= 1);
  assert.equal(server.maxConcurrentRefreshes, 1, 'refreshes overlapped');
  assert.equal(server.reused, false, 'a refresh token was presented twice');
  assert.deepEqual(server.refreshes.map((r) => r.status), server.refreshes.map(() => 200));
  const sorted = [...server.refreshes].sort((x, y) => x.start - y.start);
  for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i].start >= sorted[i - 1].end);
  for (const id of ['a', 'b']) {
    const sends = server.sent('/api/data').filter((r) => r.id === id);
    assert.equal(sends.length, 2, `tab ${id}`);
  }
}

test('cross-tab, no Web Locks: the BroadcastChannel lock serializes refreshes', async (t) => {
  const server = new FakeServer({ refreshDelay: 30 });
  const responses = await bothExpire(t, server, { locks: null });
  assertSerializedRefreshes(server, responses);
  // The second tab took the first one's new token instead of refreshing.
  assert.equal(server.refreshes.length, 1);
});

test('cross-tab with an injected Web Locks implementation', async (t) => {
  const server = new FakeServer({ refreshDelay: 30 });
  const queues = new Map();
  const requests = [];
  const locks = {
    request(name, options, callback) {
      requests.push({ name, mode: options.mode });
      const run = (queues.get(name) ?? Promise.resolve()).then(() =>
        callback({ name, mode: options.mode }),
      );
      queues.set(name, run.catch(() => {}));
      return run;
    },
  };
  const responses = await bothExpire(t, server, { locks });
  assertSerializedRefreshes(server, responses);
  // This lock hands over at once, before the first tab's news of its new
  // token crosses the channel: the second tab may refresh again, in turn,
  // with the rotated cookie.  Never more than once per tab.
  assert.ok(server.refreshes.length <= 2);
  assert.ok(requests.length >= 2, 'both tabs asked for the lock');
  assert.equal(new Set(requests.map((r) => r.name)).size, 1);
  assert.ok(requests.every((r) => r.mode === 'exclusive'));
});

test('control: without cross-tab coordination the fake server sees the race', async (t) => {
  // Shows that the checks of the two tests above can fail.
  const server = new FakeServer({ refreshDelay: 30 });
  const a = clientOf(t, server);
  const b = clientOf(t, server);
  await a.login(EMAIL, PASSWORD);
  await b.refresh(); // the second tab restores from the shared cookie
  server.expireAll();
  await Promise.all([a.fetch(API), b.fetch(API)]);
  assert.equal(server.maxConcurrentRefreshes, 2);
  assert.equal(server.reused, true);
});

// -- the account flows: mailed links and codes ---------------------------------

/** A fake address bar: `location` and a `history` that records replaceState. */
function addressBar(href) {
  const url = new URL(href);
  const replaced = [];
  const history = {
    state: { page: 1 },
    replaceState(state, unused, next) {
      replaced.push([state, next]);
      const moved = new URL(next, url);
      url.hash = moved.hash;
      url.pathname = moved.pathname;
      url.search = moved.search;
    },
  };
  return { location: url, history, replaced };
}

test('takeLinkToken reads the fragment token and removes it from the address bar', () => {
  const bar = addressBar('https://app.test/reset-password?lang=fr#token=a.b~c-_%2F');
  assert.equal(takeLinkToken(bar), 'a.b~c-_/');
  // Replaced, not pushed: no history entry keeps it; the state is kept.
  assert.deepEqual(bar.replaced, [[{ page: 1 }, '/reset-password?lang=fr']]);
  assert.equal(bar.location.href, 'https://app.test/reset-password?lang=fr');
  // Taken once: a reload of the page finds nothing.
  assert.equal(takeLinkToken(bar), null);
  assert.equal(bar.replaced.length, 1);

  // Other fragment parameters stay; another name can be taken.
  const other = addressBar('https://app.test/x#tab=2&token=t1&code=9');
  assert.equal(takeLinkToken({ ...other, name: 'code' }), '9');
  assert.equal(takeLinkToken(other), 't1');
  assert.equal(other.location.hash, '#tab=2');

  for (const href of ['https://app.test/x', 'https://app.test/x#', 'https://app.test/x#tab=2']) {
    const none = addressBar(href);
    assert.equal(takeLinkToken(none), null, href);
    assert.deepEqual(none.replaced, [], href);
  }
  const empty = addressBar('https://app.test/x#token=');
  assert.equal(takeLinkToken(empty), null);
  assert.equal(empty.location.href, 'https://app.test/x');
  // Outside a browser: nothing to read.
  assert.equal(takeLinkToken(), null);
});

/** `handler` as the server's answer to `path`, `status` and `body` by default. */
function answer(server, path, status, body) {
  server.handlers.set(path, () => Response.json(body, { status }));
}

/** The JSON body of a recorded request. */
const bodyOf = (record) => JSON.parse(new TextDecoder().decode(record.body));

for (const [method, args, path, body] of [
  ['forgotPassword', ['a@example.com'], '/api/auth/forgot-password', { email: 'a@example.com' }],
  ['emailLogin', ['a@example.com'], '/api/auth/email-login', { email: 'a@example.com' }],
  ['resendVerification', ['a@example.com'], '/api/auth/verify-email/resend', { email: 'a@example.com' }],
]) {
  test(`${method} posts the address, no access token, and returns the 202's body`, async (t) => {
    const server = new FakeServer();
    const auth = await loggedIn(t, server);
    answer(server, path, 202, { message: 'sent if it exists' });
    assert.deepEqual(await auth[method](...args), { message: 'sent if it exists' });
    const [sent] = server.sent(path);
    assert.equal(sent.method, 'POST');
    assert.deepEqual(bodyOf(sent), body);
    assert.equal(sent.authorization, null);

    answer(server, path, 429, { error: 'Too many requests', code: 'RATE_LIMITED' });
    await assert.rejects(auth[method](...args), (e) => e instanceof AuthError && e.code === 'RATE_LIMITED');
    assert.equal(server.refreshes.length, 0);
  });
}

for (const [method, args, path, body] of [
  ['resendVerification', [], '/api/auth/verify-email/resend', undefined],
  [
    'changeEmail',
    ['new@example.com', PASSWORD],
    '/api/auth/change-email',
    { newEmail: 'new@example.com', password: PASSWORD },
  ],
]) {
  test(`${method} is sent with the access token, refreshed once if expired`, async (t) => {
    const server = new FakeServer();
    const auth = await loggedIn(t, server);
    server.handlers.set(path, (record) =>
      server.expired.has(record.authorization?.slice('Bearer '.length))
        ? Response.json({ error: 'expired', code: 'TOKEN_EXPIRED' }, { status: 401 })
        : Response.json({ message: 'mail on its way' }, { status: 202 }),
    );
    server.expireAll();
    assert.deepEqual(await auth[method](...args), { message: 'mail on its way' });
    const sends = server.sent(path);
    assert.deepEqual(
      sends.map((r) => r.authorization),
      [`Bearer ${server.tokens[0]}`, `Bearer ${server.tokens[1]}`],
    );
    for (const sent of sends) {
      assert.equal(sent.method, 'POST');
      if (body === undefined) assert.equal(sent.body.length, 0);
      else assert.deepEqual(bodyOf(sent), body);
    }
  });
}

test('changeEmail refused WRONG_PASSWORD: an AuthError, the session kept', async (t) => {
  const server = new FakeServer();
  const auth = await loggedIn(t, server);
  const before = auth.session;
  answer(server, '/api/auth/change-email', 403, { error: 'Wrong password', code: 'WRONG_PASSWORD' });
  await assert.rejects(auth.changeEmail('new@example.com', 'nope'), (e) => {
    assert.ok(e instanceof AuthError);
    assert.equal(e.status, 403);
    assert.equal(e.code, 'WRONG_PASSWORD');
    return true;
  });
  assert.equal(auth.session, before);
});

const LINKS = [
  ['verifyEmail', ['link-token'], '/api/auth/verify-email', { token: 'link-token' }, 'email-verified'],
  [
    'resetPassword',
    ['link-token', 'new password 789'],
    '/api/auth/reset-password',
    { token: 'link-token', password: 'new password 789' },
    'password-reset',
  ],
  ['confirmEmailChange', ['link-token'], '/api/auth/change-email/confirm', { token: 'link-token' }, 'email-changed'],
  ['cancelEmailChange', ['link-token'], '/api/auth/change-email/cancel', { token: 'link-token' }, 'email-changed'],
];

for (const [method, args, path, body, reason] of LINKS) {
  test(`${method}: the token in a JSON body; a signed-in page refreshes after (${reason})`, async (t) => {
    const server = new FakeServer();
    const changes = spy();
    const auth = await loggedIn(t, server, { onSessionChange: changes });
    const before = auth.session;
    answer(server, path, 200, { message: 'done' });
    assert.deepEqual(await auth[method](...args), { message: 'done' });
    const [sent] = server.sent(path);
    assert.deepEqual(bodyOf(sent), body);
    assert.equal(sent.authorization, null);
    assert.equal(new URL(sent.origin + sent.path).search, '');
    // The page's session picks up the new claims.
    assert.equal(server.refreshes.length, 1);
    assert.equal(auth.session.sessionId, before.sessionId);
    assert.equal(await auth.getAccessToken(), server.tokens[1]);
    assert.deepEqual(auth.session.user, before.user);
    assert.equal(changes.calls.at(-1)[1], reason);
  });

  test(`${method}: a signed-out page sends no refresh; a link error is an AuthError`, async (t) => {
    const server = new FakeServer();
    const auth = clientOf(t, server);
    answer(server, path, 200, { message: 'done' });
    assert.deepEqual(await auth[method](...args), { message: 'done' });
    assert.equal(server.refreshes.length, 0);
    assert.equal(auth.session, null);
    for (const code of ['LINK_INVALID', 'LINK_EXPIRED']) {
      answer(server, path, 400, { error: 'That link does not work', code });
      await assert.rejects(auth[method](...args), (e) => {
        assert.ok(e instanceof AuthError);
        assert.equal(e.status, 400);
        assert.equal(e.code, code);
        return true;
      });
    }
    assert.equal(server.refreshes.length, 0);
  });
}

test('a link that ended every session signs the page out (reset, cancelled change)', async (t) => {
  for (const [method, args, path] of LINKS.filter(([m]) => m !== 'verifyEmail')) {
    const server = new FakeServer();
    const onLogout = spy();
    const auth = await loggedIn(t, server, { onLogout });
    server.handlers.set(path, () => {
      server.refreshMode = 'revoked'; // the server revoked the user's sessions
      return Response.json({ message: 'done' });
    });
    assert.deepEqual(await auth[method](...args), { message: 'done' });
    assert.equal(auth.session, null, method);
    assert.deepEqual(onLogout.calls, [['session-ended']], method);
    assert.equal(server.refreshes.length, 1, method);
  }
});

test("another user's link leaves this page's session alone", async (t) => {
  const server = new FakeServer();
  const auth = await loggedIn(t, server);
  const before = auth.session;
  answer(server, '/api/auth/verify-email', 200, { message: 'ok', user: { id: USER_ID + 1 } });
  await auth.verifyEmail('t');
  assert.equal(server.refreshes.length, 0);
  assert.equal(auth.session, before);
  // The same user's: refreshed, with the answer's user object.
  const changed = { id: USER_ID, email: 'new@example.com' };
  answer(server, '/api/auth/change-email/confirm', 200, { message: 'ok', user: changed });
  await auth.confirmEmailChange('t');
  assert.equal(server.refreshes.length, 1);
  assert.deepEqual(auth.session.user, changed);
});

test('a link answered with a session starts it here (its cookie stored)', async (t) => {
  const server = new FakeServer();
  const changes = spy();
  const auth = clientOf(t, server, { onSessionChange: changes });
  server.handlers.set('/api/auth/reset-password', (record) => {
    const jar = server.jar;
    server.startSession();
    if (record.credentials !== 'include') server.jar = jar;
    return Response.json({ message: 'ok', user: { id: USER_ID, email: EMAIL }, accessToken: server.issue() });
  });
  await auth.resetPassword('t', 'new password 789');
  assert.equal(auth.session.sessionId, server.sessionId);
  assert.deepEqual(auth.session.user, { id: USER_ID, email: EMAIL });
  assert.deepEqual(changes.calls.map(([, reason]) => reason), ['password-reset']);
  assert.equal(server.jar, server.liveCookie);
  assert.equal(server.refreshes.length, 0);
  assert.equal(await auth.refresh(), true);
});

test('a refresh that fails after a link does not fail the link', async (t) => {
  const server = new FakeServer();
  const auth = await loggedIn(t, server);
  const before = auth.session;
  answer(server, '/api/auth/verify-email', 200, { message: 'verified' });
  server.refreshMode = 503;
  assert.deepEqual(await auth.verifyEmail('t'), { message: 'verified' });
  assert.equal(server.refreshes.length, 1);
  assert.equal(auth.session, before); // kept: the next refresh will do
});

for (const [name, proof, body] of [
  ['the link', { token: 'login-token' }, { token: 'login-token' }],
  ['the code', { email: EMAIL, code: '042137' }, { email: EMAIL, code: '042137' }],
]) {
  test(`verifyEmailLogin with ${name} starts a session as login does`, async (t) => {
    const server = new FakeServer();
    const changes = spy();
    const auth = clientOf(t, server, { onSessionChange: changes });
    server.handlers.set('/api/auth/email-login/verify', (record) => {
      server.startSession();
      if (record.credentials !== 'include') server.jar = null;
      return Response.json({ user: { id: USER_ID, email: EMAIL }, accessToken: server.issue() });
    });
    assert.deepEqual(await auth.verifyEmailLogin(proof), { id: USER_ID, email: EMAIL });
    const [sent] = server.sent('/api/auth/email-login/verify');
    assert.deepEqual(bodyOf(sent), body);
    assert.equal(auth.session.sessionId, server.sessionId);
    assert.deepEqual(changes.calls.map(([, reason]) => reason), ['email-login']);
    assert.equal(await auth.refresh(), true); // its cookie was stored

    answer(server, '/api/auth/email-login/verify', 400, { error: 'Wrong code', code: 'CODE_INVALID' });
    await auth.logout();
    await assert.rejects(auth.verifyEmailLogin(proof), (e) => e.code === 'CODE_INVALID');
    assert.equal(auth.session, null);
  });
}

for (const [name, status, body, user] of [
  ['verification required', 201, { user: { id: USER_ID, email: EMAIL }, message: 'verify first' }, { id: USER_ID, email: EMAIL }],
  ['enumeration-safe', 202, { message: 'check your mail' }, null],
]) {
  test(`register answered without a session (${name}): no session, no error`, async (t) => {
    const server = new FakeServer();
    const changes = spy();
    const auth = clientOf(t, server, { onSessionChange: changes });
    answer(server, '/api/auth/register', status, body);
    assert.deepEqual(await auth.register(EMAIL, PASSWORD), user);
    assert.equal(auth.session, null);
    assert.deepEqual(changes.calls, []);
  });
}
