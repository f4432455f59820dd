"""An existing Flask app -- Flask-SQLAlchemy, Flask-Migrate, Flask-Login,
Flask-WTF's CSRFProtect, its own ``User`` (username, werkzeug hashes), its
own login page and migrations -- that adds token auth to its ``/api``.

The lines marked ``# tokenauth glue`` (here, in ``models.py`` and in
``views.py``) are all it took; docs/existing-app.md shows them.  Everything else is
the app as it was: its users, its login page, its migrations.

Run it (from the repository's root)::

    export FLASK_TOKENAUTH_ACCESS_SECRET=... FLASK_TOKENAUTH_REFRESH_SECRET=...
    flask --app examples/existing_app/app.py db upgrade          # the app's tables
    flask --app examples/existing_app/app.py tokenauth db upgrade  # ours
    flask --app examples/existing_app/app.py run

Configuration: ``create_app(config)``, or ``FLASK_*`` environment variables
(Flask's ``from_prefixed_env``): ``FLASK_SECRET_KEY``,
``FLASK_SQLALCHEMY_DATABASE_URI`` (flask_tokenauth uses the same database),
``FLASK_TOKENAUTH_ACCESS_SECRET``, ``FLASK_TOKENAUTH_REFRESH_SECRET``.

Mail: ``FLASK_MAIL_SERVER``, ``FLASK_MAIL_PORT``, ``FLASK_MAIL_USE_TLS``,
``FLASK_MAIL_USERNAME``, ``FLASK_MAIL_PASSWORD``, ``FLASK_MAIL_DEFAULT_SENDER``
(Flask-Mail's keys).  With a mail server the API gains the password reset
and the address change (``/api/auth/forgot-password``, ...), mailed through
Flask-Mail to the ``email`` of the app's users, with links to
``FLASK_TOKENAUTH_LINK_BASE_URL`` (the front end that opens them); without
one, nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask_login import LoginManager
from flask_mail import Mail  # tokenauth glue: the account mails go through it
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

from flask_tokenauth import TokenAuth, alembic_include_name, auth_bp  # tokenauth glue

from .models import User, db, user_store
from .views import api, pages

HERE = Path(__file__).resolve().parent

migrate = Migrate(include_name=alembic_include_name)  # tokenauth glue
login_manager = LoginManager()
login_manager.login_view = "pages.login"
csrf = CSRFProtect()


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    database = Path(app.instance_path) / "existing_app.sqlite3"
    app.config.from_mapping(
        SECRET_KEY="dev",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}",
        TOKENAUTH_REGISTER_ENABLED=False,  # tokenauth glue: /signup is ours
        TOKENAUTH_LINK_BASE_URL="http://127.0.0.1:5000",  # tokenauth glue: links
        TOKENAUTH_TOTP_ISSUER="Notes",  # tokenauth glue: shown by authenticator apps
    )
    app.config.from_prefixed_env()
    if config:
        app.config.update(config)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        os.makedirs(app.instance_path, exist_ok=True)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(HERE / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    # Flask-Mail reads MAIL_* (set by FLASK_MAIL_*); no MAIL_SERVER: no mail flows.
    Mail(app)  # tokenauth glue
    TokenAuth(app, user_store=user_store)  # tokenauth glue
    app.register_blueprint(auth_bp)  # tokenauth glue: /api/auth/login, /refresh...

    app.register_blueprint(pages)
    app.register_blueprint(api, url_prefix="/api")
    csrf.exempt(api)  # tokenauth glue: the API takes Bearer tokens, no cookies
    return app
