// client.d.ts against the OpenAPI description, checked by tsc.
//
// tests/test_client_types.py generates `openapi-description` (the types
// openapi-typescript makes of the document an app serves) and maps the two
// module names below to it and to a client.d.ts in a tsconfig of its own;
// every `Expect<...>` below must then be `true`.  A type of client.d.ts
// that says another shape than the description (a member missing, extra,
// renamed, optional on one side only, of another type) makes it `false`,
// and tsc names the line.
//
// Operations are found by path and method (`/api/auth` is the example
// app's prefix), not by the description's component names, which may
// change without the wire format changing.

import type { paths } from 'openapi-description';
import type {
  AccessTokenAnswer,
  ApiErrorCode,
  AuthClient,
  EmailLoginProof,
  AssertionCredentialJSON,
  ErrorAnswer,
  LoginAnswer,
  MfaProof,
  MfaStatus,
  PasskeyInfo,
  RegistrationCredentialJSON,
  ReauthenticationProof,
  RecoveryCodes,
  RevokedAnswer,
  SessionInfo,
  TotpEnrollment,
  User,
} from 'flask-tokenauth-client';

// -- Type-level equality -------------------------------------------------------

/** A check: compiles only if `T` is `true`. */
type Expect<T extends true> = T;
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** The named members (an index signature, `[field: string]: unknown`, is
 * the client's way of saying "and maybe more": not a member). */
type Named<T> = {
  [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K];
};
type OptionalKeys<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? K : never }[keyof T];
type AllTrue<T> = false extends T ? false : true;
/** The same shape: the same named members, each optional on both sides or
 * on neither, of the same shape (recursively); arrays of the same shape;
 * anything else (strings, unions with null...) mutually assignable. */
type Same<A, B> = [A] extends [readonly (infer X)[]]
  ? [B] extends [readonly (infer Y)[]]
    ? Same<X, Y>
    : false
  : [A] extends [object]
    ? [B] extends [object]
      ? SameObject<Named<A>, Named<B>>
      : false
    : Mutual<A, B>;
type SameObject<A, B> =
  Mutual<keyof A, keyof B> extends true
    ? Mutual<OptionalKeys<A>, OptionalKeys<B>> extends true
      ? AllTrue<{ [K in keyof A]-?: Same<A[K], B[K & keyof B]> }[keyof A]>
      : false
    : false;
/** Every key of every member of a union. */
type KeysOf<T> = T extends unknown ? keyof T : never;
/** A type as plain object types (an interface is not assignable to an
 * index signature, `Record<string, unknown>`, that its values do fit). */
type Plain<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]: Plain<T[K]> }
    : T;
/** A body the client sends: each of its shapes one the description
 * accepts, and no member the description does not name (or the reverse). */
type Sendable<Client, Described> = [Plain<Client>] extends [Described]
  ? Mutual<KeysOf<Client>, KeysOf<Described>>
  : false;

// -- The description, by path and method -----------------------------------------

type Path = keyof paths;
type Operation<P extends Path, M extends keyof paths[P]> = NonNullable<paths[P][M]>;
type JsonOf<R> = R extends { content: { 'application/json': infer B } } ? B : never;
/** The JSON body of an answer. */
type Answer<P extends Path, M extends keyof paths[P], S extends number> =
  Operation<P, M> extends { responses: infer R }
    ? S extends keyof R
      ? JsonOf<R[S]>
      : never
    : never;
/** The JSON body of a request. */
type RequestBody<P extends Path, M extends keyof paths[P]> =
  Operation<P, M> extends { requestBody?: infer B } ? JsonOf<NonNullable<B>> : never;
/** What a client method resolves to. */
type Resolves<K extends keyof AuthClient> = AuthClient[K] extends (
  ...args: never[]
) => Promise<infer R>
  ? R
  : never;

type EveryOperation = {
  [P in Path]: { [M in keyof paths[P]]-?: NonNullable<paths[P][M]> }[keyof paths[P]];
}[Path];
type EveryAnswer = EveryOperation extends infer O
  ? O extends { responses: infer R }
    ? JsonOf<R[keyof R]>
    : never
  : never;
/** Every error code any operation of the description lists. */
type DescribedCode = EveryAnswer extends infer B ? (B extends { code: infer C } ? C : never) : never;

// -- Sign-in, sessions, errors -------------------------------------------------------

export type UserIsTheUser = Expect<Same<User, Answer<'/api/auth/login', 'post', 200>['user']>>;
export type LoginAnswerIsLogin = Expect<Same<LoginAnswer, Answer<'/api/auth/login', 'post', 200>>>;
export type LoginAnswerIsRegister = Expect<
  Same<LoginAnswer, Answer<'/api/auth/register', 'post', 201>>
>;
export type RefreshAnswer = Expect<
  Same<AccessTokenAnswer, Answer<'/api/auth/refresh', 'post', 200>>
>;
export type PasswordAnswer = Expect<
  Same<AccessTokenAnswer, Answer<'/api/auth/password', 'post', 200>>
>;
export type Sessions = Expect<
  Same<SessionInfo[], Answer<'/api/auth/sessions', 'get', 200>['sessions']>
>;
export type SessionsMethod = Expect<Same<Resolves<'sessions'>, SessionInfo[]>>;
export type LogoutAll = Expect<
  Same<RevokedAnswer, Answer<'/api/auth/logout-all', 'post', 200>>
>;
export type LogoutOthers = Expect<
  Same<RevokedAnswer, Answer<'/api/auth/logout-others', 'post', 200>>
>;
export type LogoutAllMethod = Expect<Same<Resolves<'logoutAll'>, RevokedAnswer>>;
export type LogoutOthersMethod = Expect<Same<Resolves<'logoutOthers'>, RevokedAnswer>>;
/** The codes client.d.ts names are the codes the description lists. */
export type ErrorCodes = Expect<Mutual<ApiErrorCode, DescribedCode>>;
export type ErrorBody = Expect<
  Same<Omit<ErrorAnswer, 'code'>, Omit<Answer<'/api/auth/login', 'post', 401>, 'code'>>
>;

// -- The mail flows -------------------------------------------------------------------

export type ForgotPassword = Expect<
  Same<Resolves<'forgotPassword'>, Answer<'/api/auth/forgot-password', 'post', 202>>
>;
export type ResetPassword = Expect<
  Same<Resolves<'resetPassword'>, Answer<'/api/auth/reset-password', 'post', 200>>
>;
export type VerifyEmail = Expect<
  Same<Resolves<'verifyEmail'>, Answer<'/api/auth/verify-email', 'post', 200>>
>;
export type ResendVerification = Expect<
  Same<Resolves<'resendVerification'>, Answer<'/api/auth/verify-email/resend', 'post', 202>>
>;
export type ChangeEmail = Expect<
  Same<Resolves<'changeEmail'>, Answer<'/api/auth/change-email', 'post', 202>>
>;
export type ConfirmEmailChange = Expect<
  Same<Resolves<'confirmEmailChange'>, Answer<'/api/auth/change-email/confirm', 'post', 200>>
>;
export type CancelEmailChange = Expect<
  Same<Resolves<'cancelEmailChange'>, Answer<'/api/auth/change-email/cancel', 'post', 200>>
>;
export type EmailLogin = Expect<
  Same<Resolves<'emailLogin'>, Answer<'/api/auth/email-login', 'post', 202>>
>;
export type EmailLoginVerified = Expect<
  Same<LoginAnswer, Answer<'/api/auth/email-login/verify', 'post', 200>>
>;
export type EmailLoginBody = Expect<
  Sendable<EmailLoginProof, RequestBody<'/api/auth/email-login/verify', 'post'>>
>;

// -- The second factor ------------------------------------------------------------------

export type MfaStatusAnswer = Expect<Same<MfaStatus, Answer<'/api/auth/mfa', 'get', 200>>>;
export type MfaStatusMethod = Expect<Same<Resolves<'mfaStatus'>, MfaStatus>>;
export type RemoveTotp = Expect<
  Same<Resolves<'removeTotp'>, Answer<'/api/auth/mfa/totp', 'delete', 200>>
>;
export type EnrollTotp = Expect<
  Same<TotpEnrollment, Answer<'/api/auth/mfa/totp/enroll', 'post', 200>>
>;
export type EnrollTotpMethod = Expect<Same<Resolves<'enrollTotp'>, TotpEnrollment>>;
export type RegenerateRecoveryCodes = Expect<
  Same<Resolves<'regenerateRecoveryCodes'>, Answer<'/api/auth/mfa/recovery-codes', 'post', 200>>
>;
/** confirmTotp's answer is the session (upgraded) and the codes; the
 * client hands back the codes, as `RecoveryCodes` (which also allows a
 * `null` count, should a server leave it out). */
export type ConfirmTotpSession = Expect<
  Same<LoginAnswer, Omit<Answer<'/api/auth/mfa/totp/confirm', 'post', 200>, keyof RecoveryCodes>>
>;
export type ConfirmTotpCodes = Expect<
  Sendable<
    Pick<Answer<'/api/auth/mfa/totp/confirm', 'post', 200>, keyof RecoveryCodes>,
    RecoveryCodes
  >
>;
export type ConfirmTotpMethod = Expect<Same<Resolves<'confirmTotp'>, RecoveryCodes>>;
export type VerifyMfaAnswer = Expect<Same<LoginAnswer, Answer<'/api/auth/mfa/verify', 'post', 200>>>;
export type VerifyMfaBody = Expect<Sendable<MfaProof, RequestBody<'/api/auth/mfa/verify', 'post'>>>;
/** What the client sends for a proof: a passkey as the credential the
 * browser made. */
export type ReauthenticateBody = Expect<
  Sendable<
    | Exclude<ReauthenticationProof, 'passkey' | { passkey: true }>
    | { credential: AssertionCredentialJSON },
    RequestBody<'/api/auth/reauthenticate', 'post'>
  >
>;
export type ReauthenticateAnswer = Expect<
  Same<AccessTokenAnswer, Answer<'/api/auth/reauthenticate', 'post', 200>>
>;

// -- Passkeys ---------------------------------------------------------------------------

export type ListPasskeys = Expect<
  Same<PasskeyInfo[], Answer<'/api/auth/passkeys', 'get', 200>['passkeys']>
>;
export type ListPasskeysMethod = Expect<Same<Resolves<'listPasskeys'>, PasskeyInfo[]>>;
export type RegisterPasskey = Expect<
  Same<PasskeyInfo, Answer<'/api/auth/passkeys/register', 'post', 201>['passkey']>
>;
export type RegisterPasskeyBody = Expect<
  Sendable<
    { credential: RegistrationCredentialJSON; name?: string },
    RequestBody<'/api/auth/passkeys/register', 'post'>
  >
>;
export type RenamePasskey = Expect<
  Same<PasskeyInfo, Answer<'/api/auth/passkeys/{passkey_id}', 'patch', 200>['passkey']>
>;
export type PasskeyLogin = Expect<Same<LoginAnswer, Answer<'/api/auth/passkeys/login', 'post', 200>>>;
export type PasskeyVerify = Expect<
  Same<LoginAnswer, Answer<'/api/auth/passkeys/verify', 'post', 200>>
>;
export type PasskeyVerifyBody = Expect<
  Sendable<{ credential: AssertionCredentialJSON }, RequestBody<'/api/auth/passkeys/verify', 'post'>>
>;
export type PasskeyLoginBody = Expect<
  Sendable<{ credential: AssertionCredentialJSON }, RequestBody<'/api/auth/passkeys/login', 'post'>>
>;
