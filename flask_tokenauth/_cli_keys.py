"""``flask tokenauth keys ...``: ``generate`` makes a signing key, ``list``,
``rotate`` and ``retire`` rotate the keys of a keys directory
(``TOKENAUTH_KEYS_DIR``, see :mod:`._keysdir`).  Every command exits
non-zero with a one-line message on bad input.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from flask.cli import AppGroup, ScriptInfo

from . import _keys, _keysdir
from ._state import get_state
from .errors import ConfigurationError


@click.group("keys", cls=AppGroup)
def keys_cli() -> None:
    """Signing keys for access tokens (TOKENAUTH_SIGNING_KEY)."""


@keys_cli.command("generate", with_appcontext=False)
@click.option(
    "--alg",
    "algorithm",
    type=click.Choice(_keys.ASYMMETRIC_ALGORITHMS),
    default="EdDSA",
    show_default=True,
    help="The algorithm the key is pinned to.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["pem", "jwk"]),
    default="pem",
    show_default=True,
    help="PKCS#8 PEM, or a JWK that also records the kid and the algorithm.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the key to this new file (mode 0600) instead of printing it.",
)
def generate_key(algorithm: str, output_format: str, out: Path | None) -> None:
    """Generate a private signing key.

    Point TOKENAUTH_SIGNING_KEY at the file (or set it to the text).  The
    key id it will carry (its RFC 7638 thumbprint, or the JWK's kid) is
    printed on stderr, with the algorithm.
    """
    key = _keys.SigningKey.load(_keys.generate(algorithm), "the new key", private=True)
    if output_format == "pem":
        text = _keys.private_pem(key.signer)
    else:
        text = json.dumps(_keys.private_jwk(key), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        try:
            # O_EXCL: never overwrite a key; 0600: a private key.
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise click.ClickException(
                f"{out} exists; not overwriting a key."
            ) from None
        except OSError as e:
            raise click.ClickException(f"Cannot write {out}: {e.strerror}.") from None
        with os.fdopen(fd, "w") as file:
            file.write(text)
    click.echo(f"Generated an {algorithm} key, kid {key.kid}.", err=True)


_dir_option = click.option(
    "--dir",
    "directory",
    envvar="TOKENAUTH_KEYS_DIR",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The keys directory (default: $TOKENAUTH_KEYS_DIR).",
)


def _entries(directory: Path) -> dict[str, _keysdir.KeyEntry]:
    try:
        return _keysdir.read_state(directory)
    except ConfigurationError as e:
        raise click.ClickException(str(e)) from None


def _token_lifetime() -> timedelta:
    """``exp - iat`` of the app's access tokens (with the leeway), or the
    default lifetime when the app cannot be loaded."""
    info = click.get_current_context().find_object(ScriptInfo)
    try:
        settings = get_state(info.load_app()).settings  # type: ignore[union-attr]
    except Exception:  # no app, or one that does not start: the default
        return timedelta(minutes=15)
    return settings.access_expires + settings.leeway


@keys_cli.command("list", with_appcontext=False)
@_dir_option
def list_keys(directory: Path) -> None:
    """List the keys of the directory: kid, algorithm, state, created."""
    for entry in _entries(directory).values():
        path = _keysdir.key_file(directory, entry.kid)
        try:
            alg = _keys.SigningKey.load(path, entry.kid).algorithm if path else "?"
        except ConfigurationError:
            alg = "?"  # e.g. encrypted: list what the state file says
        until = (
            f"  signed until {entry.signed_until:%Y-%m-%d %H:%M:%S}Z"
            if entry.signed_until
            else ""
        )
        click.echo(
            f"{entry.kid}  {alg}  {entry.state}  created"
            f" {entry.created:%Y-%m-%d %H:%M:%S}Z{until}"
        )


@keys_cli.command("rotate", with_appcontext=False)
@_dir_option
@click.option(
    "--publish",
    is_flag=True,
    help="Step 1: add a new 'next' key (published, not signing yet).",
)
@click.option(
    "--alg",
    "algorithm",
    type=click.Choice(_keys.ASYMMETRIC_ALGORITHMS),
    default="EdDSA",
    show_default=True,
    help="The algorithm of the key --publish adds.",
)
def rotate_keys(directory: Path, publish: bool, algorithm: str) -> None:
    """Rotate the signing key, in two steps.

    'keys rotate --publish' adds a next key: every process publishes it in
    its JWKS and accepts its tokens (the first key of a new directory signs
    at once).  Once the JWKS caches of other services have expired
    (TOKENAUTH_JWKS_MAX_AGE), 'keys rotate' makes the next key the signing
    key and the signing key 'previous': it still verifies until 'keys
    retire'.
    """
    now = datetime.now(timezone.utc)
    if publish:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        exists = (directory / _keysdir.STATE_FILE).exists()
        entries = _entries(directory) if exists else {}
        key = _keys.SigningKey.load(
            _keys.generate(algorithm), "the new key", private=True
        )
        path = directory / f"{key.kid}.pem"
        # O_EXCL: never overwrite a key; 0600: a private key.  Written
        # before the state that names it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(_keys.private_pem(key.signer))
            file.flush()
            os.fsync(file.fileno())
        state = "next" if entries else "signing"
        entries[key.kid] = _keysdir.KeyEntry(key.kid, state, now)
        _keysdir.write_state(directory, entries)
        click.echo(f"Published an {algorithm} key, kid {key.kid}, as {state}.")
        return
    entries = _entries(directory)
    upcoming = sorted(
        (e for e in entries.values() if e.state == "next"), key=lambda e: e.created
    )
    if not upcoming:
        raise click.ClickException(
            "No next key to sign with: run 'flask tokenauth keys rotate --publish'"
            " first."
        )
    new = upcoming[0]
    for entry in list(entries.values()):
        if entry.state == "signing":
            entries[entry.kid] = _keysdir.KeyEntry(
                entry.kid, "previous", entry.created, now
            )
    entries[new.kid] = _keysdir.KeyEntry(new.kid, "signing", new.created)
    _keysdir.write_state(directory, entries)
    click.echo(f"Now signing with {new.kid}.")


class _KidCommand(click.Command):
    """A command whose one argument is a kid, which may begin with ``-``
    (an RFC 7638 thumbprint is base64url): every word that is not one of the
    command's own options (or an option's value) is the kid, so ``retire
    -Ab3...`` works as ``retire -- -Ab3...`` does.  Which key it names is
    then checked against the directory's kids."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        flags: set[str] = set(self.get_help_option_names(ctx))
        valued: set[str] = set()
        for param in self.params:
            if isinstance(param, click.Option):
                names = (*param.opts, *param.secondary_opts)
                (flags if param.is_flag else valued).update(names)
        options: list[str] = []
        words: list[str] = []
        rest = list(args)
        while rest:
            word = rest.pop(0)
            if word == "--":
                words.extend(rest)
                break
            name = word.split("=", 1)[0]
            if word in flags or name in valued:
                options.append(word)
                if word in valued and rest:  # ``--dir DIR``, not ``--dir=DIR``
                    options.append(rest.pop(0))
            else:
                words.append(word)
        return super().parse_args(ctx, [*options, "--", *words] if words else options)


@keys_cli.command("retire", cls=_KidCommand, with_appcontext=False)
@_dir_option
@click.argument("kid")
@click.option(
    "--force",
    is_flag=True,
    help="Retire it even if tokens it signed may still be valid.",
)
def retire_key(directory: Path, kid: str, force: bool) -> None:
    """Stop accepting and publishing the previous key KID.

    A KID that begins with '-' is read as the kid, not an option ('retire
    -- KID' says so explicitly)."""
    entries = _entries(directory)
    entry = entries.get(kid)
    if entry is None:
        known = ", ".join(entries) or "none"
        raise click.ClickException(
            f"No key {kid!r} in {directory} (its kids: {known})."
        )
    if entry.state == "signing":
        raise click.ClickException(
            f"{kid} is the signing key: run 'flask tokenauth keys rotate' first."
        )
    if entry.state == "retired":
        raise click.ClickException(f"{kid} is already retired.")
    if entry.signed_until is not None and not force:
        safe = entry.signed_until + _token_lifetime()
        if datetime.now(timezone.utc) < safe:
            raise click.ClickException(
                f"Tokens signed by {kid} are valid until {safe:%Y-%m-%d %H:%M:%S}Z"
                " (the access-token lifetime); retire it after that, or pass"
                " --force to log their holders out."
            )
    entries[kid] = _keysdir.KeyEntry(kid, "retired", entry.created, entry.signed_until)
    _keysdir.write_state(directory, entries)
    click.echo(f"Retired {kid}.")
