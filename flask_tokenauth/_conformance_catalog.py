"""The requirements the conformance report speaks of: data, no logic.

Each :class:`Requirement` names one numbered requirement of a published
standard (OWASP ASVS 5.0, NIST SP 800-63B-4, an RFC, WebAuthn Level 3) in
the standard's own numbering, with its wording shortened, the profiles it
belongs to, and when it applies (a predicate of :mod:`._conformance_applies`
over the app's settings).  Requirements this library cannot meet for the
host (TLS, the host's own pages, its documentation) carry ``host=`` and the
reason, and are never claimed; those it does not meet carry ``gap=`` and
what falls short, so the report says so instead of staying silent.  Which
tests prove a requirement is said by the tests themselves, with
``@pytest.mark.requirement(id)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import _conformance_applies as a
from ._conformance_applies import Applies, Context

__all__ = ["PROFILES", "REQUIREMENTS", "Context", "Requirement"]

#: The profiles, in the order the report prints them.
PROFILES: dict[str, str] = {
    "asvs-l1": "OWASP ASVS 5.0, level 1",
    "asvs-l2": "OWASP ASVS 5.0, level 2 (level 1 included)",
    "nist-aal2": "NIST SP 800-63B-4, AAL2",
    "rfc": "RFC 9700, RFC 8725, RFC 9068, RFC 6238, WebAuthn Level 3",
}

L1 = frozenset({"asvs-l1", "asvs-l2"})
L2 = frozenset({"asvs-l2"})

#: Why the host, not the library, meets these.
PAGES = "the HTML pages and forms are the host application's"
DOCS = "the deployment's own documentation (docs/ describes the library's part)"
TLS = "TLS is terminated by the host's server or proxy"


@dataclass(frozen=True)
class Requirement:
    """One requirement; ``host`` set: the host's responsibility, why;
    ``gap`` set: not met by the library, what falls short."""

    id: str
    source: str
    title: str
    profiles: frozenset[str]
    applies: Applies = field(default=a.always, compare=False)
    host: str | None = None
    gap: str | None = None


def asvs(number: str, profiles: frozenset[str], title: str, applies: Applies = a.always,
         host: str | None = None, gap: str | None = None) -> Requirement:  # fmt: skip
    return Requirement(f"ASVS-5.0-{number}", "OWASP ASVS 5.0", title, profiles,
                       applies, host, gap)  # fmt: skip


def nist(number: str, title: str, applies: Applies = a.always,
         host: str | None = None, gap: str | None = None) -> Requirement:  # fmt: skip
    return Requirement(f"NIST-800-63B-4-{number}", "NIST SP 800-63B-4", title,
                       frozenset({"nist-aal2"}), applies, host, gap)  # fmt: skip


def rfc(rid: str, title: str, applies: Applies = a.always) -> Requirement:
    source = "WebAuthn Level 3" if rid.startswith("WebAuthn") else rid[:8]
    source = source.replace("-", " ")
    return Requirement(rid, source, title, frozenset({"rfc"}), applies)


# fmt: off
REQUIREMENTS: tuple[Requirement, ...] = (
    # V2 Validation and Business Logic
    asvs("2.2.1", L1, "Input is validated against an expected structure and limits."),
    asvs("2.4.1", L2, "Anti-automation controls limit excessive calls.", a.ratelimit),
    # V3 Web Frontend Security
    asvs("3.3.1", L1, "Cookies are 'Secure', with a '__Host-' or '__Secure-' prefix.",
         a.prefixed_cookie),
    asvs("3.3.2", L2, "Each cookie's 'SameSite' value suits its purpose.", a.samesite),
    asvs("3.3.3", L2, "Cookies have the '__Host-' prefix unless shared with hosts.",
         a.host_cookie),
    asvs("3.3.4", L2, "Session cookies are 'HttpOnly', their value sent only in"
         " 'Set-Cookie'."),
    asvs("3.4.1", L1, "Responses carry HSTS with a max-age of a year or more.",
         a.hsts),
    asvs("3.4.3", L2, "Responses carry a Content-Security-Policy.", host=PAGES),
    asvs("3.4.4", L2, "Responses carry 'X-Content-Type-Options: nosniff'."),
    asvs("3.5.1", L1, "Cross-origin requests to sensitive functions are validated."),
    asvs("3.5.3", L1, "Sensitive functions use POST, PUT, PATCH or DELETE, not safe"
         " methods."),
    # V4 API and Web Service
    asvs("4.1.3", L2, "Headers set by an intermediary cannot be overridden by users."),
    # V6 Authentication
    asvs("6.1.1", L1, "Documentation says how credential stuffing is defended against.",
         host=DOCS),
    asvs("6.2.1", L1, "User-set passwords are at least 8 characters long."),
    asvs("6.2.2", L1, "Users can change their password.", a.password_change),
    asvs("6.2.3", L1, "Password change requires the current and the new password.",
         a.password_change),
    asvs("6.2.4", L1, "New passwords are checked against at least the top 3000.",
         a.blocklist),
    asvs("6.2.5", L1, "Passwords of any composition are allowed, no character rules."),
    asvs("6.2.6", L1, "Password input fields use type=password.", host=PAGES),
    asvs("6.2.7", L1, "Paste, browser password helpers and password managers work.",
         host=PAGES),
    asvs("6.2.8", L1, "Passwords are verified exactly as received, never truncated."),
    asvs("6.2.9", L2, "Passwords of at least 64 characters are permitted."),
    asvs("6.2.11", L2, "The documented context-specific words are refused."),
    asvs("6.2.12", L2, "New passwords are checked against a set of breached passwords.",
         a.blocklist),
    asvs("6.3.1", L1, "Controls against credential stuffing and brute force exist.",
         a.ratelimit),
    asvs("6.3.2", L1, "Default user accounts are not present."),
    asvs("6.3.3", L2, "Multi-factor authentication is required to access the app.",
         a.mfa_required),
    asvs("6.4.3", L2, "Password reset does not bypass an enabled second factor.",
         a.password_reset),
    asvs("6.5.1", L2, "Lookup secrets and TOTP codes are usable only once.",
         a.second_factor),
    asvs("6.5.2", L2, "Lookup secrets under 112 bits get a salted password hash.",
         gap="recovery codes (50 bits) are stored as a keyed HMAC-SHA256"),
    asvs("6.5.4", L2, "Lookup secrets and out-of-band codes have 20 bits or more.",
         a.second_factor),
    asvs("6.5.5", L2, "Out-of-band codes live 10 minutes at most, TOTP 30 seconds.",
         gap="a TOTP code is accepted one 30-second step either side of now"),
    asvs("6.6.3", L2, "Out-of-band codes are protected against brute force.",
         a.email_login),
    asvs("6.8.2", L2, "Signatures of authentication assertions are always validated."),
    # V7 Session Management
    asvs("7.1.1", L2, "Inactivity and absolute session timeouts are documented.",
         host=DOCS),
    asvs("7.2.1", L1, "Session tokens are verified by a trusted backend service."),
    asvs("7.2.2", L1, "Session tokens are dynamically generated, not static keys."),
    asvs("7.2.3", L1, "Reference tokens are unique, from a CSPRNG, 128 bits or more."),
    asvs("7.2.4", L1, "Authentication issues a new session token, ends the old."),
    asvs("7.3.1", L2, "An inactivity timeout enforces re-authentication.",
         a.idle_timeout),
    asvs("7.3.2", L2, "An absolute maximum session lifetime is enforced."),
    asvs("7.4.1", L1, "A terminated session (logout, expiry) cannot be used again.",
         a.revocation),
    asvs("7.4.2", L1, "All sessions end when the account is disabled or deleted."),
    asvs("7.4.3", L2, "Other sessions can be ended when an authentication factor"
         " changes."),
    asvs("7.4.4", L2, "Authenticated pages give easy access to logout.", host=PAGES),
    asvs("7.4.5", L2, "Administrators can end the sessions of one user or of all."),
    asvs("7.5.1", L2, "Changing the address or MFA needs re-authentication.",
         gap="enrolling the first second factor needs no re-authentication"),
    asvs("7.5.2", L2, "Users view and, re-authenticated, terminate their sessions.",
         gap="ending a session needs the access token only, no re-authentication"),
    # V9 Self-contained Tokens
    asvs("9.1.1", L1, "Self-contained tokens are validated by signature before use."),
    asvs("9.1.2", L1, "Only allowlisted algorithms, never 'none', sign and verify."),
    asvs("9.1.3", L1, "Token keys come from trusted pre-configured sources only."),
    asvs("9.2.1", L1, "Tokens are accepted only within their validity time span."),
    asvs("9.2.2", L2, "Tokens are checked to be of the right type for the purpose."),
    asvs("9.2.3", L2, "Tokens are accepted only for the intended audience ('aud')."),
    # V11 Cryptography, V12 Secure Communication
    asvs("11.4.2", L2, "Passwords are stored with an approved password hash."),
    asvs("11.5.1", L2, "Non-guessable values: a CSPRNG, 128 bits or more."),
    asvs("12.1.1", L1, "Only recent TLS versions (1.2, 1.3) are enabled.", host=TLS),
    asvs("12.2.1", L1, "TLS is used for all connections to external HTTP services.",
         host=TLS),
    # V14 Data Protection, V16 Security Logging and Error Handling
    asvs("14.2.1", L1, "Session tokens and secrets are never in URLs."),
    asvs("14.3.2", L2, "Sensitive responses carry 'Cache-Control: no-store'."),
    asvs("16.3.1", L2, "All authentication operations are logged.",
         host="the library sends signals; logging them is the host's choice"),
    # NIST SP 800-63B-4
    nist("2.2.1", "AAL2 needs a password and a physical authenticator, or a"
         " multi-factor one.", a.second_factor),
    nist("2.2.2", "AAL2 verifiers offer at least one phishing-resistant option.",
         a.passkeys),
    nist("2.2.3", "AAL2 has a definite overall reauthentication timeout."),
    nist("3.1.1.1", "No password complexity requirements besides the blocklist."),
    nist("3.1.1.2", "Password verifiers: 8+ characters, 64+ allowed, a blocklist, the"
         " whole password verified, salted hashes.", a.blocklist),
    nist("3.1.2.2", "Look-up secrets under 112 bits use a salted password hash.",
         gap="recovery codes (50 bits) are stored as a keyed HMAC-SHA256"),
    nist("3.1.4.2", "OTP verifiers accept a code once and limit failed attempts.",
         a.totp),
    nist("3.1.7.2", "Cryptographic verifiers use a unique 64-bit challenge nonce.",
         a.passkeys),
    nist("3.2.2", "At most 100 consecutive failed attempts on one account.",
         a.ratelimit),
    nist("3.2.5.2", "Phishing resistance by verifier name binding.", a.passkeys),
    nist("3.2.6", "Verifier-CSP communications are mutually authenticated.",
         host="the channels between the host's services are the host's"),
    nist("3.2.7", "At least one replay-resistant authenticator is used at AAL2.",
         a.second_factor),
    nist("4.2.1.1", "Saved recovery codes carry at least 64 random bits.",
         gap="recovery codes carry 50 random bits"),
    nist("5.1", "Session secrets: approved RBG, 64+ bits, invalid after logout."),
    nist("5.1.1", "Session cookies are Secure, HttpOnly, SameSite, narrowly scoped.",
         a.all_of(a.secure_cookie, a.samesite)),
    nist("5.2", "Sessions end when the overall or the inactivity timeout expires.",
         a.idle_timeout),
    # RFCs and WebAuthn
    rfc("RFC-9700-4.14.2", "Refresh tokens rotate; reuse of a spent one revokes the"
        " active one."),
    rfc("RFC-8725-3.1", "The JWT's algorithm is verified against the key's."),
    rfc("RFC-8725-3.5", "HMAC keys have enough entropy."),
    rfc("RFC-8725-3.8", "The issuer ('iss') is validated."),
    rfc("RFC-8725-3.9", "The audience ('aud') is used and validated."),
    rfc("RFC-8725-3.11", "Tokens are explicitly typed ('typ')."),
    rfc("RFC-9068-2.1", "Access tokens carry the 'typ' header 'at+jwt'."),
    rfc("RFC-9068-4", "Tokens of another 'typ', issuer or audience, or expired, are"
        " rejected."),
    rfc("RFC-6238-5.2", "TOTP: a bounded window of time steps, a code accepted once.",
        a.totp),
    rfc("WebAuthn-L3-7.1", "Registration verifies challenge, origin and RP ID.",
        a.passkeys),
    rfc("WebAuthn-L3-7.2", "Authentication verifies challenge, origin, RP ID,"
        " signature and user verification.", a.passkeys),
)
# fmt: on
