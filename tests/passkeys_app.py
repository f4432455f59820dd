"""The app the passkey browser tests serve (``tests.passkeys_app:create_app()``
in gunicorn): the blueprint at ``/api/auth``, configured from the
``TOKENAUTH_*`` environment, and a bare page at ``/`` whose script runs the
WebAuthn ceremonies with the server's options (the base64url conversions
done here, independent of ``client.js``)."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from flask_tokenauth import TokenAuth, auth_bp

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>passkeys</title>
<script>
const enc = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
  .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
const dec = (text) => Uint8Array.from(
  atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
const ids = (list) => (list || []).map((c) => ({...c, id: dec(c.id)}));

async function call(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`/api/auth${path}`, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return {status: response.status, body: await response.json()};
}

async function create(options) {
  const publicKey = {
    ...options,
    challenge: dec(options.challenge),
    user: {...options.user, id: dec(options.user.id)},
    excludeCredentials: ids(options.excludeCredentials),
  };
  const c = await navigator.credentials.create({publicKey});
  return {
    id: c.id, rawId: enc(c.rawId), type: c.type,
    response: {
      clientDataJSON: enc(c.response.clientDataJSON),
      attestationObject: enc(c.response.attestationObject),
      transports: c.response.getTransports(),
    },
    clientExtensionResults: c.getClientExtensionResults(),
    authenticatorAttachment: c.authenticatorAttachment,
  };
}

async function get(options) {
  const publicKey = {
    ...options,
    challenge: dec(options.challenge),
    allowCredentials: ids(options.allowCredentials),
  };
  const c = await navigator.credentials.get({publicKey});
  return {
    id: c.id, rawId: enc(c.rawId), type: c.type,
    response: {
      clientDataJSON: enc(c.response.clientDataJSON),
      authenticatorData: enc(c.response.authenticatorData),
      signature: enc(c.response.signature),
      userHandle: c.response.userHandle ? enc(c.response.userHandle) : null,
    },
    clientExtensionResults: c.getClientExtensionResults(),
    authenticatorAttachment: c.authenticatorAttachment,
  };
}

// The ceremonies, each answering {status, body} of the server's last answer.
window.passkeys = {
  call,
  // rpId: a page that asks the authenticator for another relying party
  // than the server's options name.
  async register(token, name, rpId) {
    const options = await call('POST', '/passkeys/register/options', undefined, token);
    if (options.status !== 200) return options;
    if (rpId) options.body.rp.id = rpId;
    const credential = await create(options.body);
    return call('POST', '/passkeys/register', {credential, name}, token);
  },
  async login(rpId) {
    const options = await call('POST', '/passkeys/login/options');
    if (options.status !== 200) return options;
    if (rpId) options.body.rpId = rpId;
    return call('POST', '/passkeys/login', {credential: await get(options.body)});
  },
  async verify(token) {
    const options = await call('POST', '/passkeys/verify/options', undefined, token);
    if (options.status !== 200) return options;
    const credential = await get(options.body);
    return call('POST', '/passkeys/verify', {credential}, token);
  },
};
</script>
"""


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        {k: v for k, v in os.environ.items() if k.startswith("TOKENAUTH_")}
    )
    TokenAuth(app)
    app.register_blueprint(auth_bp)

    @app.get("/")
    def page() -> Any:
        return PAGE

    @app.get("/api/health")
    def health() -> Any:
        return {"status": "ok"}

    return app
