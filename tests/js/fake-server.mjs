// A fake flask_tokenauth API for the unit tests of client.js: an injected
// `fetch` that answers like the real blueprint (JSON bodies with a stable
// `code`), issues JWT-shaped access tokens (header.payload.sig, base64url
// JSON; nothing is signed, the client never verifies) and rotates a refresh
// cookie held in a cookie jar, which several clients ("tabs") may share.

export const ORIGIN = 'http://api.test';
export const EMAIL = 'user@example.com';
export const PASSWORD = 'correct horse battery';
export const USER_ID = 42;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function base64url(value) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return Buffer.from(text, 'utf8').toString('base64url');
}

export function makeToken(claims) {
  return `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url(claims)}.not-a-signature`;
}

export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Polls `condition` until it holds; fails after `timeout` ms. */
export async function waitFor(condition, timeout = 2000, what = 'condition') {
  const end = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const json = (status, body) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' },
  });

const error = (status, code) => json(status, { error: code.toLowerCase(), code });

export class FakeServer {
  constructor({ lifetime = 900, refreshDelay = 0 } = {}) {
    /** Access token lifetime in seconds (exp - iat). */
    this.lifetime = lifetime;
    /** How long a /refresh takes (ms), to let overlapping refreshes show. */
    this.refreshDelay = refreshDelay;
    /** 'ok' | 'revoked' | 503 | 'network-error' */
    this.refreshMode = 'ok';
    /** Answer every API request TOKEN_EXPIRED, whatever the token. */
    this.alwaysExpired = false;
    /** path -> (request) => Response, overriding the default API answer. */
    this.handlers = new Map();
    /** path -> promise awaited before answering that path. */
    this.holds = new Map();

    this.jar = null; // the browser's httpOnly refresh cookie
    this.liveCookie = null; // the session's current refresh token
    this.usedCookies = new Set();
    this.sessionId = null;
    this.tokens = []; // every access token issued, in order
    this.expired = new Set(); // access tokens now answered TOKEN_EXPIRED
    this.serial = 0;

    this.requests = []; // every request seen, in order
    this.refreshes = []; // { start, end, cookie, status }
    this.activeRefreshes = 0;
    this.maxConcurrentRefreshes = 0;
    this.reused = false;

    this.fetch = this.fetch.bind(this);
  }

  issue() {
    const iat = Math.floor(Date.now() / 1000);
    const token = makeToken({
      sub: String(USER_ID),
      sid: this.sessionId,
      iat,
      exp: iat + this.lifetime,
      iss: 'flask_tokenauth',
      aud: 'flask_tokenauth',
      jti: `jti-${++this.serial}`,
    });
    this.tokens.push(token);
    return token;
  }

  /** A session whose refresh cookie is already in the jar (a reload). */
  startSession() {
    this.sessionId = `sid-${++this.serial}`;
    this.liveCookie = `refresh-${++this.serial}`;
    this.jar = this.liveCookie;
  }

  /** Every access token issued so far is now answered TOKEN_EXPIRED. */
  expireAll() {
    for (const token of this.tokens) this.expired.add(token);
  }

  /** The requests to `path` (on the API origin). */
  sent(path) {
    return this.requests.filter((r) => r.origin === ORIGIN && r.path === path);
  }

  async fetch(input, init) {
    // A network round trip is a macrotask, as it is for a real fetch.
    await new Promise((resolve) => setImmediate(resolve));
    const request = input instanceof Request && init === undefined ? input : new Request(input, init);
    const url = new URL(request.url);
    const record = {
      method: request.method,
      origin: url.origin,
      path: url.pathname,
      session: url.searchParams.get('session'),
      authorization: request.headers.get('Authorization'),
      credentials: request.credentials,
      id: request.headers.get('X-Id'),
      body: new Uint8Array(await request.arrayBuffer()),
      at: performance.now(),
    };
    this.requests.push(record);
    if (url.origin !== ORIGIN) return new Response('elsewhere', { status: 200 });

    const path = url.pathname;
    if (path === '/api/auth/login') return this.login(record);
    if (path === '/api/auth/refresh') return this.refresh(record);
    if (path === '/api/auth/logout') {
      this.jar = null;
      this.liveCookie = null;
      return json(200, { message: 'Logged out successfully' });
    }

    if (this.holds.has(path)) await this.holds.get(path);
    if (this.handlers.has(path)) return this.handlers.get(path)(record);
    const auth = record.authorization;
    if (!auth || !auth.startsWith('Bearer ')) return error(401, 'TOKEN_MISSING');
    const token = auth.slice('Bearer '.length);
    if (!this.tokens.includes(token)) return error(401, 'TOKEN_INVALID');
    if (this.alwaysExpired || this.expired.has(token)) return error(401, 'TOKEN_EXPIRED');
    return json(200, { path, sub: String(USER_ID), body: new TextDecoder().decode(record.body) });
  }

  login(record) {
    const { email, password } = JSON.parse(new TextDecoder().decode(record.body));
    if (email !== EMAIL || password !== PASSWORD) return error(401, 'INVALID_CREDENTIALS');
    this.startSession();
    return json(200, { user: { id: USER_ID, email }, accessToken: this.issue() });
  }

  async refresh(record) {
    // The browser sends the cookie with credentials 'include' only (the
    // client's requests are cross-origin here: there is no page origin).
    const cookie = record.credentials === 'include' ? this.jar : null;
    const entry = {
      start: performance.now(),
      end: null,
      cookie,
      session: record.session,
      status: null,
    };
    this.refreshes.push(entry);
    this.activeRefreshes += 1;
    this.maxConcurrentRefreshes = Math.max(this.maxConcurrentRefreshes, this.activeRefreshes);
    try {
      if (this.refreshDelay) await sleep(this.refreshDelay);
      const response = this.rotate(cookie);
      entry.status = response.status;
      return response;
    } finally {
      this.activeRefreshes -= 1;
      entry.end = performance.now();
    }
  }

  rotate(cookie) {
    if (this.refreshMode === 'network-error') {
      throw new TypeError('fetch failed');
    }
    if (this.refreshMode === 503) return error(503, 'SERVICE_UNAVAILABLE');
    if (this.refreshMode === 'ambiguous') {
      // Two live cookies and no word of which is ours: the server revokes
      // and clears them.
      this.jar = null;
      this.liveCookie = null;
      return error(401, 'REFRESH_TOKEN_AMBIGUOUS');
    }
    if (!cookie) return error(401, 'REFRESH_TOKEN_MISSING');
    if (this.usedCookies.has(cookie)) {
      // A rotated-away token came back: revoke the session, as the server does.
      this.reused = true;
      this.jar = null;
      this.liveCookie = null;
      return error(401, 'REFRESH_TOKEN_REUSED');
    }
    if (cookie !== this.liveCookie || this.refreshMode === 'revoked') {
      return error(401, 'REFRESH_TOKEN_REVOKED');
    }
    this.usedCookies.add(cookie);
    this.liveCookie = `refresh-${++this.serial}`;
    this.jar = this.liveCookie;
    return json(200, { accessToken: this.issue() });
  }
}
