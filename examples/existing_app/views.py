"""The app's pages (Flask-Login's session cookie, its own login form) and
its JSON API (Bearer tokens from flask_tokenauth), in one module.

Both kinds of ``current_user`` live here without a clash: the pages use
Flask-Login's through the module (``flask_login.current_user``,
``@flask_login.login_required``, and ``current_user`` in templates, which
Flask-Login's context processor provides); the API uses ours, imported by
name.  A page never sees a token and an API view never sees a session.

The API reads its caller with ``current_user_as(User)``: our
``current_user``, typed as this app's ``User`` (so ``mypy --strict``, which
checks this example, knows ``user.username``).
"""

from __future__ import annotations

from typing import Any

import flask_login
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import or_, select
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from flask_tokenauth import current_user_as, login_required  # tokenauth glue

from .models import Note, User, db

pages = Blueprint("pages", __name__)
api = Blueprint("api", __name__)


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired()])


class SignupForm(LoginForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8)])
    email = EmailField(
        "Email (to reset a forgotten password)",
        validators=[Optional(), Email(), Length(max=254)],
    )


# -- HTML pages (Flask-Login) ------------------------------------------------


@pages.get("/")
def index() -> Any:
    notes: list[Note] = []
    if flask_login.current_user.is_authenticated:
        notes = list(
            db.session.scalars(
                select(Note).where(Note.user_id == flask_login.current_user.id)
            )
        )
    return render_template("index.html", notes=notes)


@pages.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalars(
            select(User).where(User.username == form.username.data)
        ).first()
        if (
            user is not None
            and user.check_password(form.password.data or "")
            and flask_login.login_user(user)  # False for an inactive user
        ):
            return redirect(url_for("pages.account"))
        flash("Wrong username or password.")
    status = 200 if request.method == "GET" else 400
    return render_template("login.html", form=form), status


@pages.route("/signup", methods=["GET", "POST"])
def signup() -> Any:
    form = SignupForm()
    if form.validate_on_submit():
        email = (form.email.data or "").strip().lower() or None
        taken = select(User.id).where(
            or_(User.username == form.username.data, User.email == (email or ""))
        )
        if db.session.scalars(taken).first() is None:
            user = User(username=form.username.data, email=email)
            user.set_password(form.password.data or "")
            db.session.add(user)
            db.session.commit()
            flask_login.login_user(user)
            return redirect(url_for("pages.account"))
        flash("That username (or address) is taken.")
    status = 200 if request.method == "GET" else 400
    return render_template("signup.html", form=form), status


@pages.post("/logout")
def logout() -> Any:
    # A POST, so CSRFProtect checks the form's token first.
    flask_login.logout_user()
    return redirect(url_for("pages.index"))


@pages.get("/account")
@flask_login.login_required
def account() -> Any:
    return render_template("account.html", user=flask_login.current_user)


# -- JSON API (flask_tokenauth) ----------------------------------------------


@api.route("/notes", methods=["GET", "POST"])
@login_required  # tokenauth glue
def notes() -> Any:
    """The caller's notes; POST ``{"text": ...}`` adds one."""
    user = current_user_as(User)
    if request.method == "POST":
        body = request.get_json(silent=True) or {}
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return {"error": "A note needs a text", "code": "NOTE_TEXT"}, 400
        note = Note(user_id=user.id, text=text.strip())
        db.session.add(note)
        db.session.commit()
        return note.to_json(), 201
    rows = db.session.scalars(select(Note).where(Note.user_id == user.id))
    return {"user": user.username, "notes": [n.to_json() for n in rows]}
