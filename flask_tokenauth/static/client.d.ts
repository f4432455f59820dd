// Types of flask_tokenauth's browser client (client.js, next to this file).

/** The user object of `/register` and `/login` responses. */
export interface User {
  /** A number in the built-in users table; a host's user store may use
   * strings. */
  id: number | string;
  email: string;
  /** Whether the address is verified, while the app's
   * `TOKENAUTH_EMAIL_VERIFICATION` is not `off`. */
  emailVerified?: boolean;
}

/** The answer of a sign-in (`/login`, `/register`, `/email-login/verify`,
 * `/passkeys/login`, `/mfa/verify`...), for code that calls the API itself;
 * the refresh token is in the `Set-Cookie` header. */
export interface LoginAnswer {
  user: User;
  /** The access token (a JWT). */
  accessToken: string;
  /** The session waits for its second factor. */
  mfaRequired?: boolean;
  /** The session may only enrol a second factor. */
  mfaEnrollmentRequired?: boolean;
}

/** The answer of `/refresh` and `/password`: a new access token. */
export interface AccessTokenAnswer {
  accessToken: string;
}

/** The `code` of the API's error answers: every code its endpoints may
 * answer, as its OpenAPI description lists them (`AuthError.code`). */
export type ApiErrorCode =
  | 'CODE_INVALID'
  | 'CROSS_SITE_REQUEST'
  | 'DATABASE_UNAVAILABLE'
  | 'EMAIL_NOT_VERIFIED'
  | 'EMAIL_TAKEN'
  | 'INVALID_CREDENTIALS'
  | 'INVALID_EMAIL'
  | 'INVALID_JSON'
  | 'INVALID_PASSWORD'
  | 'LINK_EXPIRED'
  | 'LINK_INVALID'
  | 'MFA_CODE_INVALID'
  | 'MFA_ENROLLMENT_REQUIRED'
  | 'MFA_NOT_ENABLED'
  | 'MFA_REQUIRED'
  | 'NOT_FOUND'
  | 'PASSKEY_CHALLENGE_INVALID'
  | 'PASSKEY_INVALID'
  | 'PASSKEY_NOT_FOUND'
  | 'PASSKEY_REJECTED'
  | 'PASSWORD_HAS_CONTEXT_WORD'
  | 'PASSWORD_TOO_COMMON'
  | 'PAYLOAD_TOO_LARGE'
  | 'RATE_LIMITED'
  | 'REAUTHENTICATION_REQUIRED'
  | 'REFRESH_TOKEN_AMBIGUOUS'
  | 'REFRESH_TOKEN_EXPIRED'
  | 'REFRESH_TOKEN_INVALID'
  | 'REFRESH_TOKEN_MISSING'
  | 'REFRESH_TOKEN_REUSED'
  | 'REFRESH_TOKEN_REVOKED'
  | 'REVOCATION_STORE_UNAVAILABLE'
  | 'SESSION_NOT_FOUND'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_INVALID'
  | 'TOKEN_MISSING'
  | 'TOKEN_REVOKED'
  | 'TOTP_ALREADY_ENABLED'
  | 'TOTP_NOT_ENABLED'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'USER_NOT_FOUND'
  | 'VALIDATION_ERROR'
  | 'WRONG_PASSWORD';

/** An error answer's body: a human message and a stable code. */
export interface ErrorAnswer {
  error: string;
  code: ApiErrorCode;
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
  /** How the session was authenticated (RFC 8176): `pwd`, `otp`, `hwk`,
   * `swk`, `user`, `mfa`, `email`. */
  amr?: string[];
  /** The authenticator assurance level (NIST SP 800-63B): 1 or 2. */
  aal?: number;
  /** When the user last proved who they are (seconds since the epoch). */
  auth_time?: number;
  /** Only on a restricted session: `pending` (a second factor is due),
   * `enroll` (the app requires one and none is enrolled yet). */
  mfa_state?: 'pending' | 'enroll';
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
  /** The token's `mfa_state`: `pending` (only the second-factor endpoints
   * answer it: `verifyMfa`, `verifyWithPasskey`, `mfaStatus`), `enroll`
   * (only enrolment), or `null`. */
  readonly mfaState: 'pending' | 'enroll' | null;
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
  | 'mfa-verified'
  | 'passkey-login'
  | 'reauthenticated'
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

/** `verifyEmail` and `confirmEmailChange`: the address now verified, or now
 * the account's. */
export interface EmailAnswer extends FlowAnswer {
  email: string;
}

/** `cancelEmailChange`: whether the old address is the account's again
 * (`false`: the change was not confirmed yet, or another account has it
 * now). */
export interface EmailChangeCancelled extends FlowAnswer {
  restored: boolean;
}

/** `logoutAll` and `logoutOthers`: how many sessions ended. */
export interface RevokedAnswer {
  message: string;
  revoked: number;
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

/** The second factor of `verifyMfa`: an authenticator-app code, or a
 * recovery code (`k3m7q-x2ab9`, with or without the hyphen). */
export type MfaProof = { code: string } | { recoveryCode: string };

/** What an `onMfaRequired` hook answers: a code, a recovery code, a passkey
 * (`'passkey'` or `{passkey: true}`: the client runs the ceremony), or
 * `null` to give up (the session stays pending). */
export type MfaAnswer = MfaProof | 'passkey' | { passkey: true } | null | undefined;

/** What `reauthenticate` (and an `onReauthenticationRequired` hook) takes:
 * the password, an authenticator-app code, or a passkey. */
export type ReauthenticationProof =
  | { password: string }
  | { code: string }
  | 'passkey'
  | { passkey: true };

/** `GET /mfa`: the caller's factors. */
export interface MfaStatus {
  totp: { enabled: boolean; confirmedAt: string | null };
  /** How many passkeys. */
  passkeys: number;
  recoveryCodesLeft: number;
  [field: string]: unknown;
}

/** What an `onMfaRequired` hook is told. */
export interface MfaRequiredContext {
  /** The user's factors (`null` if they could not be read): offer a passkey
   * when `status.passkeys > 0`. */
  status: MfaStatus | null;
  /** The previous answer's error (`MFA_CODE_INVALID`, `PASSKEY_INVALID`, a
   * cancelled passkey dialog's `NotAllowedError`): say so, ask again. */
  error: AuthError | DOMException | null;
  /** The `401 MFA_REQUIRED` of a request, or `null` right after a login. */
  refused: AuthError | null;
}

/** What an `onReauthenticationRequired` hook is told. */
export interface ReauthenticationContext {
  /** The previous answer's error (`WRONG_PASSWORD`, `MFA_CODE_INVALID`...). */
  error: AuthError | DOMException | null;
  /** The request's `401 REAUTHENTICATION_REQUIRED`. */
  refused: AuthError;
}

/** `POST /mfa/totp/enroll`: show `qrSvg` (an inline `<svg>`) and `secret`
 * (to type in) once, then ask for a code: `confirmTotp`. */
export interface TotpEnrollment {
  secret: string;
  otpauthUri: string;
  qrSvg: string;
}

/** `POST /mfa/recovery-codes`, and `confirmTotp` (`recoveryCodes` `null`
 * when the user had codes left). */
export interface RecoveryCodes {
  recoveryCodes: string[] | null;
  recoveryCodesLeft: number | null;
}

/** One entry of `GET /passkeys`. */
export interface PasskeyInfo {
  id: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  backedUp: boolean;
  [field: string]: unknown;
}

/** The part of `navigator.credentials` the passkey calls use. */
export interface CredentialsContainerLike {
  create(options: CredentialCreationOptions): Promise<Credential | null>;
  get(options: CredentialRequestOptions): Promise<Credential | null>;
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
  /** A session waits for its second factor (after `login`, or a request
   * refused `401 MFA_REQUIRED`): ask the user, answer how to complete it.
   * Asked again, with the error, after a wrong code or a cancelled passkey;
   * requests refused meanwhile wait for the one answer, then are retried
   * once. */
  onMfaRequired?: (context: MfaRequiredContext) => MfaAnswer | Promise<MfaAnswer>;
  /** A request was refused `401 REAUTHENTICATION_REQUIRED` (a view that wants
   * a recent authentication): ask the user again; the client sends it to
   * `/reauthenticate` and retries the request once.  `null` gives up (the
   * caller gets the 401). */
  onReauthenticationRequired?: (
    context: ReauthenticationContext,
  ) => ReauthenticationProof | null | undefined | Promise<ReauthenticationProof | null | undefined>;
  /** Replaces `navigator.credentials` (for tests). */
  credentials?: CredentialsContainerLike | null;
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
  /** Sign in.  For a user with a second factor the server answers a
   * pending session: with an `onMfaRequired` hook the client completes it
   * before this resolves; without one (or when the hook gives up) `session`
   * is pending (`mfaPending`) until `verifyMfa` or `verifyWithPasskey`.
   * @throws AuthError (e.g. `INVALID_CREDENTIALS`, `RATE_LIMITED`) */
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
  logoutAll(): Promise<RevokedAnswer>;
  /** Revoke every session of the user but this one. */
  logoutOthers(): Promise<RevokedAnswer>;
  sessions(): Promise<SessionInfo[]>;
  revokeSession(id: string): Promise<void>;
  /**
   * Change the password: the server ends every session of the user, this
   * one included, and the client continues in the new session it answers.
   * A sign-in older than the server's `TOKENAUTH_REAUTHENTICATION_MAX_AGE`
   * goes through `onReauthenticationRequired` first.
   * @throws AuthError `WRONG_PASSWORD`, `REAUTHENTICATION_REQUIRED` (no
   * step-up hook, or it gave up)
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
  verifyEmail(token: string): Promise<EmailAnswer>;
  /** Mail a new verification link: signed in, to the user's own address;
   * signed out, to `email` (the same `202` whatever the address). */
  resendVerification(email?: string): Promise<FlowAnswer>;
  /** Ask to change the signed-in user's address: a confirm link goes to the
   * new address, a notice with a cancel link to the current one.
   * @throws AuthError `WRONG_PASSWORD`, `INVALID_EMAIL` */
  changeEmail(newEmail: string, password: string): Promise<FlowAnswer>;
  /** Complete an address change with the confirm link's token.
   * @throws AuthError `LINK_INVALID`, `LINK_EXPIRED` */
  confirmEmailChange(token: string): Promise<EmailAnswer>;
  /** Undo an address change with the cancel link's token (before or after it
   * was confirmed); every session of the user ends.
   * @throws AuthError `LINK_INVALID`, `LINK_EXPIRED` */
  cancelEmailChange(token: string): Promise<EmailChangeCancelled>;
  /** Mail a sign-in link and code to the address (the same `202` whatever
   * the address). */
  emailLogin(email: string): Promise<FlowAnswer>;
  /** Sign in with the link's token or the mail's code, as `login` does.
   * @throws AuthError `LINK_INVALID`, `LINK_EXPIRED`, `CODE_INVALID` */
  verifyEmailLogin(proof: EmailLoginProof): Promise<User>;

  // -- the second factor ----------------------------------------------------

  /** Whether the session waits for its second factor. */
  readonly mfaPending: boolean;
  /** Complete a pending session with a code or a recovery code: the session
   * is upgraded (`aal` 2) and its refresh cookie rotated.
   * @throws AuthError `MFA_CODE_INVALID`, `RATE_LIMITED` */
  verifyMfa(proof: MfaProof): Promise<User | null>;
  /** The caller's factors (a pending session may ask). */
  mfaStatus(): Promise<MfaStatus>;
  /** Start turning on an authenticator app.
   * @throws AuthError `TOTP_ALREADY_ENABLED`, `REAUTHENTICATION_REQUIRED` */
  enrollTotp(): Promise<TotpEnrollment>;
  /** Turn it on with a first code: the session is upgraded; the recovery
   * codes, to show once (`null` when the user had some left).
   * @throws AuthError `MFA_CODE_INVALID`, `TOTP_NOT_ENABLED` */
  confirmTotp(code: string): Promise<RecoveryCodes>;
  /** Turn the authenticator app off (a fresh authentication: the step-up
   * hook).  @throws AuthError `TOTP_NOT_ENABLED` */
  removeTotp(): Promise<MfaStatus>;
  /** Ten new recovery codes; the old ones stop working (a fresh
   * authentication).  @throws AuthError `MFA_NOT_ENABLED` */
  regenerateRecoveryCodes(): Promise<{ recoveryCodes: string[]; recoveryCodesLeft: number }>;
  /** Renew the session's `auth_time` (`POST /reauthenticate`): what an
   * `onReauthenticationRequired` hook answers, sent by the client itself.
   * @throws AuthError `WRONG_PASSWORD`, `MFA_CODE_INVALID`, `PASSKEY_INVALID` */
  reauthenticate(proof: ReauthenticationProof): Promise<void>;

  // -- passkeys (TOKENAUTH_PASSKEYS_ENABLED) --------------------------------
  //
  // `navigator.credentials` rejects with a DOMException when the user
  // cancels (`NotAllowedError`); a browser without WebAuthn:
  // `NotSupportedError`.

  /** Register a passkey of this device for the signed-in user.
   * @throws AuthError `PASSKEY_REJECTED`, `REAUTHENTICATION_REQUIRED` */
  registerPasskey(name?: string): Promise<PasskeyInfo>;
  /** Sign in with a passkey alone (a discoverable credential, user
   * verification): a full session, `aal` 2.
   * @throws AuthError `PASSKEY_INVALID`, `PASSKEY_CHALLENGE_INVALID` */
  loginWithPasskey(): Promise<User | null>;
  /** Complete a pending session with one of the user's passkeys.
   * @throws AuthError `PASSKEY_INVALID` */
  verifyWithPasskey(): Promise<User | null>;
  listPasskeys(): Promise<PasskeyInfo[]>;
  /** @throws AuthError `PASSKEY_NOT_FOUND`, `VALIDATION_ERROR` */
  renamePasskey(id: string, name: string): Promise<PasskeyInfo>;
  /** (A fresh authentication.)  @throws AuthError `PASSKEY_NOT_FOUND` */
  removePasskey(id: string): Promise<void>;

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
  /** The stable code, e.g. `INVALID_CREDENTIALS` (one of `ApiErrorCode`
   * for the API's own answers; an app's own routes may add others);
   * undefined if the body had none. */
  readonly code: ApiErrorCode | (string & {}) | undefined;
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

/** base64url (no padding) of bytes. */
export function toBase64url(buffer: ArrayBuffer | ArrayBufferView): string;
/** The bytes of a base64url text. */
export function fromBase64url(text: string): ArrayBuffer;
/** The server's registration options (`PublicKeyCredentialCreationOptionsJSON`)
 * as `navigator.credentials.create({publicKey})` takes them. */
export function creationOptionsFromJSON(
  options: PublicKeyCredentialCreationOptionsJSON,
): PublicKeyCredentialCreationOptions;
/** The server's request options (`PublicKeyCredentialRequestOptionsJSON`) as
 * `navigator.credentials.get({publicKey})` takes them. */
export function requestOptionsFromJSON(
  options: PublicKeyCredentialRequestOptionsJSON,
): PublicKeyCredentialRequestOptions;
/** A credential of `create()` or `get()` in the JSON form the server reads. */
export function credentialToJSON(credential: Credential): CredentialJSON;

/** A WebAuthn credential in the JSON form the server reads (binary fields
 * in base64url): a new passkey (`create()`, for `/passkeys/register`) or an
 * assertion (`get()`, for `/passkeys/login`, `/passkeys/verify`,
 * `/reauthenticate`). */
export type CredentialJSON = RegistrationCredentialJSON | AssertionCredentialJSON;

interface CredentialJSONBase {
  id: string;
  rawId: string;
  type: 'public-key';
  /** The browser's `getClientExtensionResults()`. */
  clientExtensionResults: Record<string, unknown>;
  authenticatorAttachment?: 'platform' | 'cross-platform';
}

/** A new passkey (RegistrationResponseJSON). */
export interface RegistrationCredentialJSON extends CredentialJSONBase {
  response: {
    clientDataJSON: string;
    attestationObject: string;
    transports?: string[];
  };
}

/** An assertion (AuthenticationResponseJSON). */
export interface AssertionCredentialJSON extends CredentialJSONBase {
  response: {
    clientDataJSON: string;
    authenticatorData: string;
    signature: string;
    userHandle: string | null;
  };
}
