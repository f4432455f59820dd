// Type-checked, never run: uses the whole API of client.js through the
// declarations next to it (client.d.ts), under `strict`.  The
// `@ts-expect-error` lines must stay errors: were the declarations to
// degrade to `any`, tsc would report those directives as unused.
// Run: npx tsc -p tests/js

import {
  AuthError,
  createAuthClient,
  creationOptionsFromJSON,
  credentialToJSON,
  decodeToken,
  fromBase64url,
  requestOptionsFromJSON,
  takeLinkToken,
  toBase64url,
  type AccessTokenClaims,
  type CredentialJSON,
  type MfaAnswer,
  type MfaRequiredContext,
  type MfaStatus,
  type PasskeyInfo,
  type ReauthenticationContext,
  type ReauthenticationProof,
  type RecoveryCodes,
  type TotpEnrollment,
  type AuthClient,
  type AuthClientOptions,
  type EmailLoginProof,
  type FlowAnswer,
  type LockManagerLike,
  type LogoutReason,
  type Session,
  type SessionChangeReason,
  type SessionInfo,
  type User,
} from '../../flask_tokenauth/static/client.js';

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2
  ? true
  : false;
function expectType<T>(value: T): T {
  return value;
}
function assertTrue<T extends true>(): T | undefined {
  return undefined;
}

const inProcessLocks: LockManagerLike = {
  request<T>(name: string, options: { mode: 'exclusive' }, callback: (lock: unknown) => Promise<T>) {
    return callback({ name, mode: options.mode });
  },
};

const options: AuthClientOptions = {
  baseUrl: new URL('https://api.example.com'),
  authPath: '/api/auth',
  refreshAhead: 30,
  restore: true,
  crossTab: true,
  attachTo: (url: URL) => url.origin === 'https://api.example.com',
  fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init),
  locks: inProcessLocks,
  onSessionChange(session: Session | null, reason: SessionChangeReason) {
    if (session) expectType<string>(session.userId);
    expectType<SessionChangeReason>(reason);
  },
  onLogout(reason: LogoutReason) {
    switch (reason) {
      case 'logout':
      case 'session-ended':
      case 'cookie-conflict':
      case 'other-tab':
        return;
      default: {
        const never: never = reason;
        return never;
      }
    }
  },
};

export async function demo(): Promise<void> {
  const auth: AuthClient = createAuthClient(options);
  createAuthClient();
  createAuthClient({ baseUrl: 'https://api.example.com', refreshAhead: false, locks: null });
  // The browser's own lock manager fits the option.
  createAuthClient({ locks: navigator.locks });

  expectType<string>(auth.version);
  expectType<boolean>(auth.isAuthenticated);
  const restored: Session | null = await auth.ready;
  assertTrue<Equals<typeof restored, Session | null>>();

  const user: User = await auth.login('user@example.com', 'correct horse battery');
  // A number in the built-in users table, a string in some hosts' stores.
  expectType<number | string>(user.id);
  expectType<string>(user.email);
  expectType<boolean | undefined>(user.emailVerified);
  const registered: User | null = await auth.register('new@example.com', 'correct horse battery');
  assertTrue<Equals<typeof registered, User | null>>();

  const session = auth.session;
  if (session !== null) {
    expectType<string>(session.userId);
    expectType<string>(session.sessionId);
    expectType<User | null>(session.user);
    expectType<number>(session.expiresAt);
    expectType<number>(session.lifetime);
    const claims: Readonly<AccessTokenClaims> = session.claims;
    expectType<string>(claims.sid);
    expectType<unknown>(claims['custom']);
    // @ts-expect-error the session is read-only
    session.userId = 'someone else';
  }

  const response: Response = await auth.fetch('/api/profile', {
    method: 'POST',
    body: JSON.stringify({ a: 1 }),
  });
  await auth.fetch(new Request('https://api.example.com/x'));
  await auth.fetch(new URL('https://api.example.com/y'));
  expectType<unknown>(await response.json());

  expectType<boolean>(await auth.refresh());
  const token: string | null = await auth.getAccessToken();
  assertTrue<Equals<typeof token, string | null>>();

  const sessions: SessionInfo[] = await auth.sessions();
  for (const s of sessions) {
    expectType<string>(s.id);
    expectType<string | null>(s.userAgent);
    expectType<string | null>(s.ipAddress);
    expectType<string>(s.createdAt);
    expectType<string>(s.lastUsedAt);
    expectType<string>(s.expiresAt);
    expectType<boolean>(s.current);
  }
  await auth.revokeSession(sessions[0]?.id ?? '');
  const others = await auth.logoutOthers();
  expectType<number>(others.revoked);
  expectType<string>(others.message);
  await auth.changePassword('old password 123', 'new password 456');
  const all = await auth.logoutAll();
  expectType<number>(all.revoked);
  await auth.logout();

  // The account flows.
  const linkToken: string | null = takeLinkToken();
  assertTrue<Equals<typeof linkToken, string | null>>();
  takeLinkToken({ name: 'code', location, history });
  takeLinkToken({ location: { hash: '#token=t', pathname: '/reset-password', search: '' } });
  const sent: FlowAnswer = await auth.forgotPassword('user@example.com');
  expectType<string>(sent.message);
  expectType<unknown>(sent['anything']);
  if (linkToken !== null) {
    await auth.resetPassword(linkToken, 'new password 789');
    expectType<string>((await auth.verifyEmail(linkToken)).email);
    expectType<string>((await auth.confirmEmailChange(linkToken)).email);
    expectType<boolean>((await auth.cancelEmailChange(linkToken)).restored);
    const byLink: User = await auth.verifyEmailLogin({ token: linkToken });
    expectType<number | string>(byLink.id);
  }
  await auth.resendVerification();
  await auth.resendVerification('user@example.com');
  await auth.changeEmail('new@example.com', 'correct horse battery');
  await auth.emailLogin('user@example.com');
  const proof: EmailLoginProof = { email: 'user@example.com', code: '123456' };
  await auth.verifyEmailLogin(proof);
  if (session !== null) {
    expectType<boolean | undefined>(session.claims.email_verified);
  }

  const unsubscribe: () => void = auth.subscribe((s, reason) => {
    expectType<Session | null>(s);
    expectType<SessionChangeReason>(reason);
  });
  unsubscribe();
  auth.close();

  const claims: AccessTokenClaims = decodeToken('a.b.c');
  expectType<string>(claims.sub);
  expectType<number>(claims.exp);

  try {
    await auth.login('user@example.com', 'wrong');
  } catch (error) {
    if (error instanceof AuthError) {
      expectType<number>(error.status);
      expectType<string | undefined>(error.code);
      expectType<'AuthError'>(error.name);
      expectType<unknown>(error.body);
      expectType<Error>(error);
      // @ts-expect-error the code may be missing (a body without one)
      error.code.toUpperCase();
    }
  }
  const made = new AuthError(429, 'RATE_LIMITED', 'Too many requests', { retryAfter: 3 });
  expectType<string>(made.message);

  // -- what must not type-check ----------------------------------------------

  // @ts-expect-error the email is a string
  await auth.login(1, 'password');
  // @ts-expect-error login takes an email and a password
  await auth.login('user@example.com');
  // @ts-expect-error the session may be null
  expectType<string>(auth.session.userId);
  // @ts-expect-error no such option
  createAuthClient({ baseUrl: 'https://api.example.com', refreshAhed: 30 });
  // @ts-expect-error refreshAhead is seconds or false, not true
  createAuthClient({ refreshAhead: true });
  // @ts-expect-error not a logout reason
  const reason: LogoutReason = 'restore';
  // @ts-expect-error the version is read-only
  auth.version = '2';
  // @ts-expect-error the token is a string
  decodeToken(42);
  // @ts-expect-error no such method
  auth.getToken();
  // @ts-expect-error a user id is a number
  const id: string = user.id;
  // @ts-expect-error a code needs its address
  await auth.verifyEmailLogin({ code: '123456' });
  // @ts-expect-error the new address and the current password
  await auth.changeEmail('new@example.com');
  // @ts-expect-error a reset needs the link's token and the new password
  await auth.resetPassword('new password 789');
  // @ts-expect-error the token may be missing
  expectType<string>(takeLinkToken());
  // @ts-expect-error ready is a promise, not the session
  expectType<Session | null>(auth.ready);
  // @ts-expect-error a code or a recovery code, not both missing
  await auth.verifyMfa({});
  // @ts-expect-error the hook answers a proof, not a bare code
  createAuthClient({ onMfaRequired: () => '123456' });
  // @ts-expect-error a reauthentication proof names what it is
  await auth.reauthenticate('password');
  // @ts-expect-error the passkey's new name is required
  await auth.renamePasskey('id');
  void reason;
  void id;
}

// -- the second factor and passkeys ------------------------------------------

export async function secondFactor(): Promise<void> {
  const auth = createAuthClient({
    async onMfaRequired(context: MfaRequiredContext): Promise<MfaAnswer> {
      expectType<MfaStatus | null>(context.status);
      expectType<AuthError | null>(context.refused);
      if (context.status && context.status.passkeys > 0) return 'passkey';
      if (context.error) return null;
      return { code: '123456' };
    },
    onReauthenticationRequired(context: ReauthenticationContext): ReauthenticationProof | null {
      expectType<AuthError>(context.refused);
      return context.error ? null : { password: 'correct horse battery' };
    },
    credentials: navigator.credentials,
  });
  createAuthClient({ onMfaRequired: () => ({ recoveryCode: 'k3m7q-x2ab9' }) });
  createAuthClient({ onMfaRequired: () => ({ passkey: true }), onReauthenticationRequired: () => 'passkey' });

  await auth.login('user@example.com', 'correct horse battery');
  expectType<boolean>(auth.mfaPending);
  const state: 'pending' | 'enroll' | null | undefined = auth.session?.mfaState;
  void state;
  expectType<number | undefined>(auth.session?.claims.aal);
  expectType<string[] | undefined>(auth.session?.claims.amr);
  expectType<number | undefined>(auth.session?.claims.auth_time);
  await auth.verifyMfa({ code: '123456' });
  await auth.verifyMfa({ recoveryCode: 'k3m7q-x2ab9' });
  const status: MfaStatus = await auth.mfaStatus();
  expectType<boolean>(status.totp.enabled);
  expectType<number>(status.recoveryCodesLeft);

  const enrollment: TotpEnrollment = await auth.enrollTotp();
  expectType<string>(enrollment.qrSvg);
  expectType<string>(enrollment.otpauthUri);
  const codes: RecoveryCodes = await auth.confirmTotp('123456');
  expectType<string[] | null>(codes.recoveryCodes);
  const fresh = await auth.regenerateRecoveryCodes();
  expectType<string[]>(fresh.recoveryCodes);
  expectType<MfaStatus>(await auth.removeTotp());
  await auth.reauthenticate({ password: 'correct horse battery' });
  await auth.reauthenticate({ code: '123456' });
  await auth.reauthenticate('passkey');

  const passkey: PasskeyInfo = await auth.registerPasskey('Laptop');
  await auth.registerPasskey();
  expectType<boolean>(passkey.backedUp);
  expectType<string | null>(passkey.lastUsedAt);
  const list: PasskeyInfo[] = await auth.listPasskeys();
  await auth.renamePasskey(list[0]?.id ?? '', 'Phone');
  await auth.removePasskey(passkey.id);
  expectType<User | null>(await auth.loginWithPasskey());
  expectType<User | null>(await auth.verifyWithPasskey());

  const bytes: ArrayBuffer = fromBase64url(toBase64url(new Uint8Array([1, 2])));
  void bytes;
  const creation: PublicKeyCredentialCreationOptions = creationOptionsFromJSON({
    challenge: 'AA',
    rp: { name: 'x' },
    user: { id: 'AQ', name: 'n', displayName: 'n' },
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
  });
  const request: PublicKeyCredentialRequestOptions = requestOptionsFromJSON({ challenge: 'AA' });
  const made = await navigator.credentials.create({ publicKey: creation });
  if (made) {
    const sent: CredentialJSON = credentialToJSON(made);
    expectType<string>(sent.rawId);
  }
  void request;
}
