// flask_tokenauth browser client: a dependency-free ES module.
//
//   import { createAuthClient } from '/api/auth/client.js';
//   const auth = createAuthClient({ onLogout: () => showLogin() });
//   await auth.ready;                        // session restored from the cookie, or null
//   const res = await auth.fetch('/api/profile');
//
// The access token lives in this module's memory only: never in
// localStorage, sessionStorage or a readable cookie, where any script that
// runs on the page (an XSS, a compromised dependency) could read it and use it
// elsewhere.  The refresh token is an httpOnly cookie restricted to the auth
// path: this code never sees it, the browser sends it to /refresh and /logout
// only.
//
// Refreshes are single-flight: however many requests fail with
// TOKEN_EXPIRED at once, one /refresh is sent and every one of them is retried
// once with its result.  Across tabs a Web Lock (or, where there is none, a
// lock negotiated on a BroadcastChannel) serializes refreshes, so two tabs
// never present the same refresh token; tabs tell each other about new
// tokens, logins and logouts on the same channel.
//
// The links mailed by the account flows (reset a password, verify or change
// an address, sign in by email) carry their one-time token in the URL's
// fragment, which the browser never sends: takeLinkToken() reads it on the
// page the link opens and removes it from the address bar, and the page
// POSTs it in a JSON body (resetPassword, verifyEmail, ...).
//
// A second factor: a password login of a user with one answers a session
// that waits for it (`mfaRequired`, and `401 MFA_REQUIRED` from every view
// until it is completed).  The app's `onMfaRequired` hook says how to
// complete it (a code, a recovery code, or a passkey), the client sends it
// to /mfa/verify (or runs the passkey ceremony for /passkeys/verify) and
// the login, or the refused request, continues.  A view that wants a recent
// authentication answers `401 REAUTHENTICATION_REQUIRED`: the app's
// `onReauthenticationRequired` hook asks the user again, the client sends
// it to /reauthenticate and retries the request once.  Passkeys: the
// options' base64url fields become the ArrayBuffers `navigator.credentials`
// wants, and its credential becomes JSON again, here (no library).
//
// Types: client.d.ts, next to this file.  Served by the blueprint as
// <prefix>/client.js and <prefix>/client.d.ts.

const VERSION = '1';
/** 401 codes after which a refresh may help: retried once with a new token. */
const REFRESHABLE = new Set(['TOKEN_EXPIRED', 'TOKEN_INVALID', 'TOKEN_REVOKED']);
/** 401 codes a hook of the app may answer (then the request is retried once). */
const STEP_UP = new Set(['MFA_REQUIRED', 'REAUTHENTICATION_REQUIRED']);
/** Errors of a factor after which the hook is asked again (a mistyped code,
 * a passkey dialog cancelled): with the error, so it can say so. */
const ASK_AGAIN = new Set([
  'MFA_CODE_INVALID',
  'WRONG_PASSWORD',
  'PASSKEY_INVALID',
  'PASSKEY_CHALLENGE_INVALID',
  'VALIDATION_ERROR',
]);
/** Bounds a fallback lock held by a tab that went away mid-refresh (ms). */
const FALLBACK_LOCK_TTL = 10000;
/** How long a tab waits for competing claims to the fallback lock (ms). */
const FALLBACK_CLAIM_WINDOW = 50;
/** After a proactive refresh that failed for a reason other than a 401 (ms). */
const RETRY_DELAY = 5000;

/** An error response of the auth API: `status`, the stable `code`, the body. */
export class AuthError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.name = 'AuthError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** The claims of a JWT, read without verifying it (the server verifies). */
export function decodeToken(token) {
  const part = String(token).split('.')[1];
  if (!part) throw new TypeError('not a JWT');
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/**
 * The one-time token of a mailed link (`#token=...`), taken out of the
 * address bar: read from `location.hash` and removed with
 * `history.replaceState` (no new history entry), so that it stays out of the
 * history, bookmarks, a shared screen and the `Referer` of anything the page
 * loads.  Call it first, before any request.  `null` when the fragment has
 * none (the page was reloaded after the token was taken, say).
 */
export function takeLinkToken(options = {}) {
  const name = options.name ?? 'token';
  const loc = options.location ?? globalThis.location;
  const hist = options.history ?? globalThis.history;
  if (!loc || !loc.hash) return null;
  const params = new URLSearchParams(loc.hash.slice(1));
  if (!params.has(name)) return null;
  const token = params.get(name);
  params.delete(name);
  const rest = params.toString();
  if (hist && typeof hist.replaceState === 'function') {
    hist.replaceState(hist.state, '', `${loc.pathname}${loc.search}${rest ? `#${rest}` : ''}`);
  }
  return token || null;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.clone().json();
  } catch {
    // Not JSON (a proxy's HTML page, say): no code.
  }
  const code = body && typeof body.code === 'string' ? body.code : undefined;
  const message = body && typeof body.error === 'string' ? body.error : undefined;
  return new AuthError(response.status, code, message, body);
}

/** Call an app's callback; its bug must not break the client, so it is
 * reported as the browser reports any uncaught error. */
function notify(callback, ...args) {
  try {
    callback(...args);
  } catch (error) {
    setTimeout(() => {
      throw error;
    });
  }
}

/** Whether a hook's answer asks for a passkey (`'passkey'` or `{passkey: true}`). */
function isPasskey(proof) {
  return proof === 'passkey' || (typeof proof === 'object' && proof !== null && proof.passkey === true);
}

/** A request init with a JSON body (when there is one). */
function jsonInit(method, body) {
  if (body === undefined) return { method };
  return { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
}

// -- WebAuthn's JSON forms ------------------------------------------------------

/** base64url (no padding) of an ArrayBuffer or a view of one. */
export function toBase64url(buffer) {
  const bytes = buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The bytes of a base64url (or base64) text, as an ArrayBuffer. */
export function fromBase64url(text) {
  const base64 = String(text).replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
}

const withIds = (list) => (list || []).map((c) => ({ ...c, id: fromBase64url(c.id) }));

/** `PublicKeyCredentialCreationOptionsJSON` (the server's registration
 * options) -> the `publicKey` of `navigator.credentials.create()`. */
export function creationOptionsFromJSON(options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    user: { ...options.user, id: fromBase64url(options.user.id) },
    excludeCredentials: withIds(options.excludeCredentials),
  };
}

/** `PublicKeyCredentialRequestOptionsJSON` -> the `publicKey` of
 * `navigator.credentials.get()`.  No `allowCredentials` (a sign-in without a
 * name): the authenticator offers its discoverable credentials. */
export function requestOptionsFromJSON(options) {
  const publicKey = { ...options, challenge: fromBase64url(options.challenge) };
  if (options.allowCredentials) publicKey.allowCredentials = withIds(options.allowCredentials);
  return publicKey;
}

/** A `PublicKeyCredential` of `create()` or `get()` as the server reads it
 * (`credential.toJSON()`'s form: binary fields in base64url). */
export function credentialToJSON(credential) {
  const r = credential.response;
  const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64url(r.attestationObject);
    if (typeof r.getTransports === 'function') response.transports = r.getTransports();
  } else {
    response.authenticatorData = toBase64url(r.authenticatorData);
    response.signature = toBase64url(r.signature);
    response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
  }
  const json = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults:
      typeof credential.getClientExtensionResults === 'function'
        ? credential.getClientExtensionResults()
        : {},
  };
  if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
  return json;
}

/**
 * A lock shared by the tabs of one origin.  The Web Locks API where there is
 * one; otherwise a lock negotiated on a BroadcastChannel (each tab claims it,
 * waits a moment for competing claims, and the earliest claim wins), which
 * is good enough for refreshes: the server's reuse interval covers the rest.
 */
function makeCrossTabLock(name, channel, locks) {
  if (locks && typeof locks.request === 'function') {
    return (fn) => locks.request(name, { mode: 'exclusive' }, fn);
  }
  if (!channel) return (fn) => fn();

  const me = Math.random().toString(36).slice(2) + Date.now().toString(36);
  const held = new Map(); // tab id -> time its hold expires
  let claims = []; // competing claims seen during our own claim window
  let wake = null;
  channel.addEventListener('message', (event) => {
    const m = event.data;
    if (!m || m.type !== 'lock' || m.name !== name || m.id === me) return;
    if (m.op === 'acquire') held.set(m.id, Date.now() + FALLBACK_LOCK_TTL);
    if (m.op === 'release') held.delete(m.id);
    if (m.op === 'claim') claims.push(m);
    if (wake) wake();
  });
  const post = (op, at) => channel.postMessage({ type: 'lock', name, op, id: me, at });
  const until = (ms) =>
    new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(ms, 0));
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });
  const busy = () => {
    const now = Date.now();
    for (const [id, expires] of held) if (expires <= now) held.delete(id);
    return held.size > 0;
  };

  return async (fn) => {
    for (;;) {
      while (busy()) await until(Math.min(...held.values()) - Date.now());
      const at = Date.now();
      claims = [];
      post('claim', at);
      await until(FALLBACK_CLAIM_WINDOW);
      const beaten = claims.some((c) => c.at < at || (c.at === at && c.id < me));
      if (!beaten && !busy()) break;
      // Let the earlier claimant take it: its 'acquire' arrives shortly.
      await until(FALLBACK_CLAIM_WINDOW);
    }
    post('acquire');
    try {
      return await fn();
    } finally {
      post('release');
    }
  };
}

/**
 * Create a client for a flask_tokenauth API.  See client.d.ts for every
 * option; the defaults suit a page served by the Flask app itself.
 */
export function createAuthClient(options = {}) {
  const here = globalThis.location ? globalThis.location.href : undefined;
  const base = new URL(options.baseUrl ?? '/', here);
  const authPath = (options.authPath ?? '/api/auth').replace(/\/+$/, '');
  const authUrl = (path) => new URL(authPath + path, base).href;
  const fetchImpl = options.fetch ?? ((...args) => globalThis.fetch(...args));
  const attachTo = options.attachTo ?? ((url) => url.origin === base.origin);
  const refreshAhead = options.refreshAhead === false ? null : (options.refreshAhead ?? 30);
  const crossTab = options.crossTab ?? true;
  const onMfaRequired = options.onMfaRequired ?? null;
  const onReauthenticationRequired = options.onReauthenticationRequired ?? null;
  // Each tab refreshes at its own point of the last quarter of the margin:
  // tabs that share one token do not all refresh at once, the first one's
  // new token reaches the others before their turn.
  const spread = 1 - Math.random() / 4;
  const listeners = new Set();
  if (options.onSessionChange) listeners.add(options.onSessionChange);

  let token = null;
  let session = null;
  let timer = null;
  let inflight = null;
  let closed = false;

  const channelName = `flask_tokenauth:${base.origin}${authPath}`;
  const channel =
    crossTab && typeof BroadcastChannel === 'function'
      ? new BroadcastChannel(channelName)
      : null;
  const locks = crossTab ? (options.locks ?? globalThis.navigator?.locks) : null;
  const withLock = crossTab
    ? makeCrossTabLock(`${channelName}:refresh`, channel, locks)
    : (fn) => fn();

  function emit(reason) {
    for (const listener of listeners) notify(listener, session, reason);
    if (!session && options.onLogout && reason !== 'restore') notify(options.onLogout, reason);
  }

  /** Arm the proactive refresh: `margin()` before expiry, or after `delay`. */
  function schedule(delay) {
    clearTimeout(timer);
    timer = null;
    if (!session || refreshAhead === null || closed) return;
    delay ??= session.expiresAt - margin() - Date.now();
    // setTimeout's limit is 2**31 - 1 ms; a later expiry is re-checked then.
    timer = setTimeout(() => {
      timer = null;
      if (!needsRefresh()) schedule();
      // Refused for now (429, 503, offline): try again in a few seconds.
      else refresh().catch(() => schedule(RETRY_DELAY));
    }, Math.min(Math.max(delay, 0), 2 ** 31 - 1));
  }

  function margin() {
    if (!session || refreshAhead === null) return 0;
    return Math.min(refreshAhead * 1000, session.lifetime / 2) * spread;
  }

  function needsRefresh() {
    return session !== null && refreshAhead !== null && Date.now() >= session.expiresAt - margin();
  }

  /** Take a new access token; `user` is kept unless one is given. */
  function adopt(accessToken, user, reason, { announce = true } = {}) {
    const claims = decodeToken(accessToken);
    // Expiry by this machine's clock: lifetime from the token, start from
    // now, so a client whose clock is off still refreshes on time.
    const lifetime = Math.max(((claims.exp ?? 0) - (claims.iat ?? claims.exp ?? 0)) * 1000, 0);
    const sameSession = session && session.sessionId === claims.sid;
    token = accessToken;
    session = Object.freeze({
      userId: String(claims.sub),
      sessionId: claims.sid,
      user: user ?? (sameSession ? session.user : null),
      // 'pending': a second factor is due (/mfa/verify, /passkeys/verify);
      // 'enroll': TOKENAUTH_MFA "required" and none enrolled yet.
      mfaState: claims.mfa_state ?? null,
      expiresAt: Date.now() + lifetime,
      lifetime,
      claims: Object.freeze(claims),
    });
    schedule();
    if (announce && channel) {
      channel.postMessage({ type: 'session', token: accessToken, user: session.user, reason });
    }
    emit(reason);
  }

  function forget(reason, { announce = true } = {}) {
    const had = session !== null;
    token = null;
    session = null;
    schedule();
    if (announce && channel && had) channel.postMessage({ type: 'logout', reason });
    if (had || reason === 'restore') emit(reason);
  }

  /** Messages may cross: never trade our token for an older one of the
   * same session. */
  function isNewer(other) {
    if (other === token) return false;
    if (!session) return true;
    try {
      const claims = decodeToken(other);
      return claims.sid !== session.sessionId || claims.iat >= session.claims.iat;
    } catch {
      return false;
    }
  }

  if (channel) {
    channel.addEventListener('message', (event) => {
      const m = event.data;
      if (!m || closed) return;
      if (m.type === 'session' && typeof m.token === 'string' && isNewer(m.token)) {
        adopt(m.token, m.user, 'other-tab', { announce: false });
      } else if (m.type === 'logout') {
        forget('other-tab', { announce: false });
      }
    });
  }

  /** A POST to the auth API with the refresh cookie (no access token). */
  function post(path, body) {
    return fetchImpl(authUrl(path), { ...jsonInit('POST', body), credentials: 'include' });
  }

  /** Wait for a refresh in flight, whatever its outcome. */
  async function settled() {
    if (inflight) await inflight.catch(() => {});
  }

  /** One /refresh, under the cross-tab lock; true if we hold a token after.
   * `user` replaces the session's user object (after an address change). */
  async function runRefresh(reason, user) {
    const before = token;
    return withLock(async () => {
      // Another tab refreshed (and told us) while we waited for the lock.
      if (token !== null && token !== before) return true;
      // The session this page holds, named so that the server can tell our
      // refresh cookie from one planted beside it (cookie tossing) and clear
      // the planted one.  A query parameter: no CORS preflight.
      const path = session
        ? `/refresh?session=${encodeURIComponent(session.sessionId)}`
        : '/refresh';
      const response = await post(path);
      if (response.ok) {
        const { accessToken } = await response.json();
        adopt(accessToken, user, reason);
        return true;
      }
      if (response.status === 401) {
        // A session adopted meanwhile (another tab's login) is not this one.
        if (token !== before) return token !== null;
        // The session is over (expired, revoked, reused or no cookie), or
        // the browser sent several live refresh cookies and the server could
        // not tell ours: it revoked them and cleared every one it could, so
        // the next login starts clean.
        const { code } = await errorOf(response);
        const ended = code === 'REFRESH_TOKEN_AMBIGUOUS' ? 'cookie-conflict' : 'session-ended';
        forget(reason === 'restore' ? 'restore' : ended);
        return false;
      }
      // 429, 503, a proxy error: the session may well be alive; keep it and
      // let a later call try again.
      throw await errorOf(response);
    });
  }

  function refresh(reason = 'refresh', user = undefined) {
    if (closed) return Promise.resolve(false);
    if (!inflight) {
      inflight = runRefresh(reason, user).finally(() => {
        inflight = null;
      });
    }
    return inflight;
  }

  /** A token good to send now: waits for a refresh in flight, and refreshes
   * first if ours is about to expire. */
  async function currentToken() {
    await settled();
    if (needsRefresh()) await refresh().catch(() => {});
    return token;
  }

  async function authFetch(input, init) {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (!attachTo(url) || request.headers.has('Authorization')) {
      return fetchImpl(request);
    }
    const sent = await currentToken();
    const send = (r, bearer) => {
      if (bearer) r.headers.set('Authorization', `Bearer ${bearer}`);
      return fetchImpl(r);
    };
    // Send a copy: the original keeps its body for a retry.
    const first = await send(request.clone(), sent);
    if (first.status !== 401 || !sent) return first;
    const error = await errorOf(first);
    if (STEP_UP.has(error.code)) return stepUpAndRetry(request, first, error);
    if (!REFRESHABLE.has(error.code)) return first;
    let fresh = token;
    if (fresh === sent) {
      try {
        fresh = (await refresh()) ? token : null;
      } catch {
        fresh = null; // could not refresh now: the caller gets the 401
      }
    }
    if (!fresh || fresh === sent) return first;
    // The one retry (an aborted request's signal rejects it here).
    const second = await send(request.clone(), fresh);
    if (second.status !== 401) return second;
    const then = await errorOf(second);
    return STEP_UP.has(then.code) ? stepUpAndRetry(request, second, then) : second;
  }

  /** A 401 `MFA_REQUIRED` or `REAUTHENTICATION_REQUIRED`: the app's hook
   * proves what is missing, and the request is sent once more.  Without a
   * hook, or when the user gives up, the caller gets the 401. */
  async function stepUpAndRetry(request, refused, error) {
    let done = false;
    try {
      done = error.code === 'MFA_REQUIRED' ? await completeMfa(error) : await stepUp(error);
    } catch {
      done = false; // the factor failed otherwise (RATE_LIMITED, offline)
    }
    if (!done || !token) return refused;
    const retry = request.clone();
    retry.headers.set('Authorization', `Bearer ${token}`);
    return fetchImpl(retry);
  }

  /** Single-flight: requests refused at once wait for one answer of the hook. */
  let mfaFlight = null;
  let stepUpFlight = null;

  /** Ask `onMfaRequired` for a factor and complete the pending session with
   * it; again (with the error) after a wrong code or a cancelled passkey.
   * True once the session is upgraded; false without a hook or when the
   * hook gives up (answers `null`). */
  function completeMfa(error) {
    if (!onMfaRequired) return Promise.resolve(false);
    mfaFlight ??= (async () => {
      // Directly, not through fetch's hooks: never waits for itself.
      const bearer = await currentToken();
      const status = await direct('GET', '/mfa', undefined, bearer).catch(() => null);
      return askUntilDone(
        (last) => onMfaRequired({ status, error: last ?? null, refused: error ?? null }),
        (proof) => (isPasskey(proof) ? client.verifyWithPasskey() : client.verifyMfa(proof)),
      );
    })().finally(() => {
      mfaFlight = null;
    });
    return mfaFlight;
  }

  /** Ask `onReauthenticationRequired` for a proof and send it to
   * /reauthenticate (as `completeMfa` does with its hook). */
  function stepUp(error) {
    if (!onReauthenticationRequired) return Promise.resolve(false);
    stepUpFlight ??= askUntilDone(
      (last) => onReauthenticationRequired({ error: last ?? null, refused: error }),
      (proof) => client.reauthenticate(proof),
    ).finally(() => {
      stepUpFlight = null;
    });
    return stepUpFlight;
  }

  async function askUntilDone(ask, prove) {
    let last = null;
    for (;;) {
      const proof = await ask(last);
      if (!proof) return false;
      try {
        await prove(proof);
        return true;
      } catch (e) {
        const again =
          (e instanceof AuthError && ASK_AGAIN.has(e.code)) ||
          (e && (e.name === 'NotAllowedError' || e.name === 'AbortError'));
        if (!again) throw e;
        last = e;
      }
    }
  }

  async function authenticate(path, body, reason) {
    // A restore in flight would otherwise overwrite the new session's cookie.
    await settled();
    const response = await post(path, body);
    if (!response.ok) throw await errorOf(response);
    const answer = await response.json();
    // A registration may start no session: the address must be verified
    // first (`201 {user, message}`), or the app answers every registration
    // alike, taken address or not (`202 {message}`).
    if (typeof answer.accessToken === 'string') adopt(answer.accessToken, answer.user, reason);
    return answer;
  }

  /** `authenticate`, then the second factor its answer asks for (when the
   * app has an `onMfaRequired` hook); the user. */
  async function signIn(path, body, reason) {
    const answer = await authenticate(path, body, reason);
    if (answer.mfaRequired) await completeMfa(null);
    return answer.user ?? null;
  }

  /** A JSON call to the auth API with the access token `bearer` and the
   * cookies, as is: no refresh, no hook (the factor endpoints, which the
   * hooks themselves call). */
  async function direct(method, path, body, bearer) {
    const init = jsonInit(method, body);
    init.headers = { ...init.headers };
    if (bearer) init.headers.Authorization = `Bearer ${bearer}`;
    const response = await fetchImpl(authUrl(path), { ...init, credentials: 'include' });
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  /** A call whose answer upgrades this session (a second factor): the
   * server rotates the refresh cookie, so it is sent under the refresh lock,
   * as a password change is, and the new access token is adopted. */
  async function upgrade(path, body, reason) {
    const user = session && session.user;
    const bearer = await currentToken();
    return withLock(async () => {
      const answer = await direct('POST', path, body, bearer);
      if (typeof answer.accessToken === 'string') {
        adopt(answer.accessToken, answer.user ?? user, reason);
      }
      return answer;
    });
  }

  function webauthn() {
    const credentials = options.credentials ?? globalThis.navigator?.credentials;
    if (!credentials || typeof credentials.create !== 'function') {
      throw new DOMException('This browser has no WebAuthn (passkeys)', 'NotSupportedError');
    }
    return credentials;
  }

  /** `navigator.credentials.get` with the server's request options; the
   * assertion in JSON. */
  async function assertion(optionsJSON) {
    const credential = await webauthn().get({ publicKey: requestOptionsFromJSON(optionsJSON) });
    if (!credential) throw new DOMException('No passkey was chosen', 'NotAllowedError');
    return credentialToJSON(credential);
  }

  /** A passkey's assertion over the options of /passkeys/verify/options
   * (the second factor, and a step-up), for the session's own passkeys. */
  async function sessionAssertion() {
    const bearer = await currentToken();
    return assertion(await direct('POST', '/passkeys/verify/options', undefined, bearer));
  }

  /** A JSON call to the auth API with the access token (sessions, password). */
  async function call(method, path, body) {
    const response = await authFetch(authUrl(path), jsonInit(method, body));
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  /** A POST to the auth API without the access token (a mail flow: the
   * address or the link's token is the credential); its JSON answer. */
  async function send(path, body) {
    const response = await post(path, body);
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  /**
   * After a link was used: a server that answers a session (`accessToken`)
   * starts it here; otherwise the session this page holds refreshes, so
   * that it carries the new claims (`email_verified`, the address) or,
   * when the link ended every session of its user (a reset, a cancelled
   * change), the page learns at once that it is signed out.  A link of
   * another user than this page's (the answer names its `user`) changes
   * nothing here.  The link's work is done whatever the refresh does.
   */
  async function afterLink(body, reason) {
    const user = body && typeof body.user === 'object' && body.user !== null ? body.user : undefined;
    if (body && typeof body.accessToken === 'string') {
      await settled();
      adopt(body.accessToken, user, reason);
      return;
    }
    if (!session) return;
    if (user && user.id !== undefined && String(user.id) !== session.userId) return;
    // Not a refresh that was already in flight: it may predate the change.
    await settled();
    await refresh(reason, user).catch(() => {});
  }

  /** POST a link's token (and more); then `afterLink`. */
  async function spendLink(path, body, reason) {
    const answer = await send(path, body);
    await afterLink(answer, reason);
    return answer;
  }

  const client = {
    version: VERSION,
    get session() {
      return session;
    },
    get isAuthenticated() {
      return session !== null;
    },
    ready: null,
    fetch: authFetch,
    refresh: () => refresh('refresh'),
    getAccessToken: currentToken,
    login: (email, password) => signIn('/login', { email, password }, 'login'),
    async register(email, password) {
      return (await authenticate('/register', { email, password }, 'register')).user ?? null;
    },
    async logout() {
      // A refresh in flight would otherwise hand us a token after logout.
      await settled();
      try {
        await post('/logout');
      } finally {
        forget('logout');
      }
    },
    async logoutAll() {
      const result = await call('POST', '/logout-all');
      forget('logout');
      return result;
    },
    logoutOthers: () => call('POST', '/logout-others'),
    async sessions() {
      return (await call('GET', '/sessions')).sessions;
    },
    async revokeSession(id) {
      await call('DELETE', `/sessions/${encodeURIComponent(id)}`);
      if (session && id === session.sessionId) forget('logout');
    },
    async changePassword(currentPassword, newPassword) {
      // The server ends every session of the user, this one included, and
      // answers with a new session: its access token, and its refresh cookie
      // (hence credentials, for an API on another origin).  Sent under the
      // refresh lock, so that no tab refreshes with the old cookie meanwhile.
      const user = session && session.user;
      const attempt = async () => {
        const bearer = await currentToken();
        await withLock(async () => {
          const init = jsonInit('POST', { currentPassword, newPassword });
          if (bearer) init.headers.Authorization = `Bearer ${bearer}`;
          const response = await fetchImpl(authUrl('/password'), { ...init, credentials: 'include' });
          if (!response.ok) throw await errorOf(response);
          const { accessToken } = await response.json();
          adopt(accessToken, user, 'password-changed');
        });
      };
      try {
        await attempt();
      } catch (error) {
        // A sign-in too old for a password change: the step-up hook, then
        // once more (outside the lock: /reauthenticate does not rotate).
        if (!(error instanceof AuthError && error.code === 'REAUTHENTICATION_REQUIRED')) throw error;
        if (!(await stepUp(error))) throw error;
        await attempt();
      }
    },
    // -- the account flows (answers of 202: the mail goes out after them) --
    forgotPassword: (email) => send('/forgot-password', { email }),
    async resetPassword(token, password) {
      // The server ends every session of the user; a server that answers
      // a new one sets its cookie: sent under the refresh lock, as a
      // password change is, so that no tab refreshes with the old cookie
      // meanwhile (its failure would clear the new one).
      const answer = await withLock(() => send('/reset-password', { token, password }));
      await afterLink(answer, 'password-reset');
      return answer;
    },
    verifyEmail: (token) => spendLink('/verify-email', { token }, 'email-verified'),
    resendVerification(email) {
      // Signed in: to the caller's own address (the access token says
      // whose); signed out (a login refused EMAIL_NOT_VERIFIED): by address.
      return email === undefined
        ? call('POST', '/verify-email/resend')
        : send('/verify-email/resend', { email });
    },
    changeEmail: (newEmail, password) => call('POST', '/change-email', { newEmail, password }),
    confirmEmailChange: (token) => spendLink('/change-email/confirm', { token }, 'email-changed'),
    cancelEmailChange: (token) => spendLink('/change-email/cancel', { token }, 'email-changed'),
    emailLogin: (email) => send('/email-login', { email }),
    verifyEmailLogin(proof) {
      const body = proof && 'token' in proof
        ? { token: proof.token }
        : { email: proof?.email, code: proof?.code };
      return signIn('/email-login/verify', body, 'email-login');
    },
    // -- the second factor ---------------------------------------------------
    get mfaPending() {
      return session !== null && session.mfaState === 'pending';
    },
    async verifyMfa(proof) {
      const body =
        proof && proof.recoveryCode !== undefined
          ? { recoveryCode: proof.recoveryCode }
          : { code: proof?.code };
      return (await upgrade('/mfa/verify', body, 'mfa-verified')).user ?? session?.user ?? null;
    },
    mfaStatus: () => call('GET', '/mfa'),
    enrollTotp: () => call('POST', '/mfa/totp/enroll'),
    async confirmTotp(code) {
      const answer = await upgrade('/mfa/totp/confirm', { code }, 'mfa-verified');
      return {
        recoveryCodes: answer.recoveryCodes ?? null,
        recoveryCodesLeft: answer.recoveryCodesLeft ?? null,
      };
    },
    removeTotp: () => call('DELETE', '/mfa/totp'),
    regenerateRecoveryCodes: () => call('POST', '/mfa/recovery-codes'),
    async reauthenticate(proof) {
      let body;
      if (isPasskey(proof)) body = { credential: await sessionAssertion() };
      else if (proof && proof.password !== undefined) body = { password: proof.password };
      else body = { code: proof?.code };
      const bearer = await currentToken();
      const { accessToken } = await direct('POST', '/reauthenticate', body, bearer);
      adopt(accessToken, undefined, 'reauthenticated');
    },
    // -- passkeys --------------------------------------------------------------
    async registerPasskey(name) {
      const options = await call('POST', '/passkeys/register/options');
      const credential = await webauthn().create({ publicKey: creationOptionsFromJSON(options) });
      if (!credential) throw new DOMException('No passkey was made', 'NotAllowedError');
      const body = { credential: credentialToJSON(credential) };
      if (name !== undefined) body.name = name;
      return (await call('POST', '/passkeys/register', body)).passkey;
    },
    async loginWithPasskey() {
      // The options set a sign-in cookie the answer is bound to.
      const options = await send('/passkeys/login/options');
      const credential = await assertion(options);
      return (await authenticate('/passkeys/login', { credential }, 'passkey-login')).user ?? null;
    },
    async verifyWithPasskey() {
      const credential = await sessionAssertion();
      return (await upgrade('/passkeys/verify', { credential }, 'mfa-verified')).user ?? session?.user ?? null;
    },
    async listPasskeys() {
      return (await call('GET', '/passkeys')).passkeys;
    },
    async renamePasskey(id, name) {
      return (await call('PATCH', `/passkeys/${encodeURIComponent(id)}`, { name })).passkey;
    },
    async removePasskey(id) {
      await call('DELETE', `/passkeys/${encodeURIComponent(id)}`);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
      clearTimeout(timer);
      timer = null;
      listeners.clear();
      if (channel) channel.close();
    },
  };
  client.ready =
    options.restore === false
      ? Promise.resolve(null)
      : refresh('restore').then(
          () => session,
          () => session,
        );
  return client;
}
