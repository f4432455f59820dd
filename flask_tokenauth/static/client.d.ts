// Types of flask_tokenauth's browser client (client.js, next to this file).

/** The user object of `/register` and `/login` responses. */
export interface User {
  id: number;
  email: string;
}

/** The claims of an access token (read, not verified, by the client). */
export interface AccessTokenClaims {
  sub: string;
  sid: string;
  iat: number;
  exp: number;
  iss: string;
  aud: string | string[];
  jti: string;
  /** Whether the user's address is verified, when the app's
   * `TOKENAUTH_EMAIL_VERIFICATION` is not `off`. */
  email_verified?: boolean;
  [claim: string]: unknown;
}

/** What the client knows about the signed-in session; `null` when signed out. */
export interface Session {
  /** The user's id, from the token's `sub` claim (a string). */
  readonly userId: string;
  /** The session's id (`sid`), as listed by `sessions()`. */
  readonly sessionId: string;
  /** From login or register, in this tab or another; `null` after a restore. */
  readonly user: User | null;
  /** When the access token expires, by this machine's clock (ms since epoch). */
  readonly expiresAt: number;
  /** The access token's lifetime (ms). */
  readonly lifetime: number;
  readonly claims: Readonly<AccessTokenClaims>;
}

/** Why the session changed. */
export type SessionChangeReason =
  | 'restore'
  | 'login'
  | 'register'
  | 'refresh'
  | 'password-changed'
  | 'password-reset'
  | 'email-verified'
  | 'email-changed'
  | 'email-login'
  | 'logout'
  | 'session-ended'
  | 'cookie-conflict'
  | 'other-tab';

/** Why the user is no longer signed in: they logged out here (`logout`), in
 * another tab (`other-tab`), the server ended the session (expired,
 * revoked, reused refresh token: `session-ended`), or the browser held
 * several live refresh cookies, one planted by another site, and the
 * server could not tell which is this page's (`cookie-conflict`: it cleared
 * them; the next login starts clean). */
export type LogoutReason = 'logout' | 'session-ended' | 'cookie-conflict' | 'other-tab';

/** One entry of `GET /sessions`. */
export interface SessionInfo {
  id: string;
  userAgent: string | null;
  ipAddress: string | null;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  current: boolean;
}

/** The answer of an account-flow endpoint: `202 {message}` for the requests
 * that mail something (the same whatever the address), `200` for the links. */
export interface FlowAnswer {
  message: string;
  [field: string]: unknown;
}

/** What proves a sign-in by email: the link's token, or the address and the
 * 6-digit code of the same mail. */
export type EmailLoginProof = { token: string } | { email: string; code: string };

/** Where `takeLinkToken` reads and rewrites the address (default: the page's). */
export interface TakeLinkTokenOptions {
  /** The fragment parameter; default `token`. */
  name?: string;
  location?: Pick<Location, 'hash' | 'pathname' | 'search'>;
  history?: Pick<History, 'replaceState' | 'state'>;
}

/** The part of the Web Locks API the client uses. */
export interface LockManagerLike {
  request<T>(
    name: string,
    options: { mode: 'exclusive' },
    callback: (lock: unknown) => Promise<T>,
  ): Promise<T>;
}

export interface AuthClientOptions {
  /** Where the Flask app is; default: this page's origin. */
  baseUrl?: string | URL;
  /** The blueprint's prefix; default `/api/auth`. */
  authPath?: string;
  /** Refresh this many seconds before the access token expires (at most half
   * its lifetime; each tab picks a point between 75% and 100% of that, so
   * that tabs do not refresh at once), on a timer and before sending a
   * request; `false` refreshes only after a `TOKEN_EXPIRED` answer.
   * Default 30. */
  refreshAhead?: number | false;
  /** Restore the session from the refresh cookie on creation; default true. */
  restore?: boolean;
  /** Coordinate refreshes, logins and logouts with other tabs; default true. */
  crossTab?: boolean;
  /** Which requests get the access token; default: same origin as `baseUrl`.
   * Never send it to a third party. */
  attachTo?: (url: URL) => boolean;
  /** The fetch to use; default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Replaces `navigator.locks` (for tests and unusual hosts). */
  locks?: LockManagerLike | null;
  /** Called with the new session (or `null`) whenever it changes. */
  onSessionChange?: (session: Session | null, reason: SessionChangeReason) => void;
  /** Called when a signed-in user is signed out: show the login form here
   * instead of redirecting. */
  onLogout?: (reason: LogoutReason) => void;
}

export interface AuthClient {
  readonly version: string;
  /** The current session, or `null`. */
  readonly session: Session | null;
  readonly isAuthenticated: boolean;
  /** Settles once the session has been restored from the cookie (or not). */
  readonly ready: Promise<Session | null>;
  /** `fetch`, with the access token on requests to the API; on a 401
   * `TOKEN_EXPIRED` (or `TOKEN_INVALID`/`TOKEN_REVOKED`) it refreshes once,
   * shared with every other request waiting, and retries the request once. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Refresh now (single-flight); true if signed in afterwards, false if the
   * server ended the session.  Names the page's session (`?session=`), so
   * that a refresh cookie planted beside ours is told apart and cleared.
   * @throws AuthError when refused for another reason (`RATE_LIMITED`, `503`),
   * TypeError when offline; the session is kept then. */
  refresh(): Promise<boolean>;
  /** A valid access token, refreshed first if needed; `null` if signed out. */
  getAccessToken(): Promise<string | null>;
  /** @throws AuthError (e.g. `INVALID_CREDENTIALS`, `RATE_LIMITED`) */
  login(email: string, password: string): Promise<User>;
  /**
   * Register, and sign in if the server starts a session.  It does not
   * when the address must be verified first (`TOKENAUTH_EMAIL_VERIFICATION`
   * `required`: the user, and `session` stays `null`) or when the server
   * answers every registration alike (`TOKENAUTH_REGISTER_ENUMERATION_SAFE`:
   * `null`; the mail says what happened).
   * @throws AuthError (e.g. `EMAIL_TAKEN`, `INVALID_PASSWORD`) */
  register(email: string, password: string): Promise<User | null>;
  /** Revoke this session on the server and forget it here and in other tabs. */
  logout(): Promise<void>;
  /** Revoke every session of the user, this one included. */
  logoutAll(): Promise<{ message: string; revoked: number }>;
  /** Revoke every session of the user but this one. */
  logoutOthers(): Promise<{ message: string; revoked: number }>;
  sessions(): Promise<SessionInfo[]>;
  revokeSession(id: string): Promise<void>;
  /**
   * Change the password: the server ends every session of the user, this
   * one included, and the client continues in the new session it answers.
   * @throws AuthError `WRONG_PASSWORD`
   */
  changePassword(currentPassword: string, newPassword: string): Promise<void>;

  // -- account flows: mailed links and codes --------------------------------
  //
  // A link's token comes from `takeLinkToken()` on the page the link opens.
  // Errors of a link: AuthError `LINK_INVALID` (wrong, used, superseded, or
  // of another purpose) or `LINK_EXPIRED`.  After a link is used, a session
  // this page holds is refreshed (its claims follow the change; a link that
  // ended the user's sessions signs the page out, `onLogout('session-ended')`).

  /** Mail a reset link to the address: the same `202` whether or not it has
   * an account.  @throws AuthError `INVALID_EMAIL`, `RATE_LIMITED`, `NOT_FOUND`
   * (the flow is off) */
  forgotPassword(email: string): Promise<FlowAnswer>;
  /** Set a new password with a reset link's token; every session of the
   * user ends.  @throws AuthError `LINK_INVALID`, `LINK_EXPIRED`,
   * `INVALID_PASSWORD` */
  resetPassword(token: string, password: string): Promise<FlowAnswer>;
  /** Mark the address of a verification link verified.
   * @throws AuthError `LINK_INVALID`, `LINK_EXPIRED` */
  verifyEmail(token: string): Promise<FlowAnswer>;
  /** Mail a new verification link: signed in, to the user's own address;
   * signed out, to `email` (the same `202` whatever the address). */
  resendVerification(email?: string): Promise<FlowAnswer>;
  /** Ask to change the signed-in user's address: a confirm link goes to the
   * new address, a notice with a cancel link to the current one.
   * @throws AuthError `WRONG_PASSWORD`, `INVALID_EMAIL` */
  changeEmail(newEmail: string, password: string): Promise<FlowAnswer>;
  /** Complete an address change with the confirm link's token.
   * @throws AuthError `LINK_INVALID`, `LINK_EXPIRED` */
  confirmEmailChange(token: string): Promise<FlowAnswer>;
  /** Undo an address change with the cancel link's token (before or after it
   * was confirmed); every session of the user ends.
   * @throws AuthError `LINK_INVALID`, `LINK_EXPIRED` */
  cancelEmailChange(token: string): Promise<FlowAnswer>;
  /** Mail a sign-in link and code to the address (the same `202` whatever
   * the address). */
  emailLogin(email: string): Promise<FlowAnswer>;
  /** Sign in with the link's token or the mail's code, as `login` does.
   * @throws AuthError `LINK_INVALID`, `LINK_EXPIRED`, `CODE_INVALID` */
  verifyEmailLogin(proof: EmailLoginProof): Promise<User>;

  /** Listen to session changes; returns the function that stops listening. */
  subscribe(
    listener: (session: Session | null, reason: SessionChangeReason) => void,
  ): () => void;
  /** Stop timers and cross-tab messages. */
  close(): void;
}

/** An error answer of the auth API. */
export class AuthError extends Error {
  constructor(status: number, code?: string, message?: string, body?: unknown);
  readonly name: 'AuthError';
  /** The HTTP status. */
  readonly status: number;
  /** The stable code, e.g. `INVALID_CREDENTIALS`; undefined if the body had none. */
  readonly code: string | undefined;
  readonly body: unknown;
}

export function createAuthClient(options?: AuthClientOptions): AuthClient;

/**
 * The one-time token of a mailed link (`#token=...` in the page's address),
 * removed from the address bar with `history.replaceState` before it is
 * returned.  Call it before any request.  `null` when there is none.
 */
export function takeLinkToken(options?: TakeLinkTokenOptions): string | null;

/** The claims of a JWT, read without verifying it. */
export function decodeToken(token: string): AccessTokenClaims;
