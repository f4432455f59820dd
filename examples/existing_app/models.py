"""The app's own models, as they were before flask_tokenauth.

Passwords are werkzeug hashes (``generate_password_hash``), checked by the
app's own login form; ``active`` switches an account off; ``email`` (in
lower case, optional at sign-up) is where the app's mail goes.
"""

from __future__ import annotations

from typing import Any

from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from flask_tokenauth import SQLAlchemyUserStore  # tokenauth glue

db = SQLAlchemy()
Model: Any = db.Model  # Flask-SQLAlchemy's base, untyped for mypy


class User(UserMixin, Model):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def is_active(self) -> bool:
        """Flask-Login refuses to log in an inactive user."""
        return self.active

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Note(Model):
    __tablename__ = "note"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    text: Mapped[str] = mapped_column(Text)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text}


# How flask_tokenauth finds and checks these users: by username, their
# werkzeug hashes as they are, and the ``active`` column honoured; the
# mail flows (password reset, address change) use the ``email`` column.
# tokenauth glue (the next line)
user_store = SQLAlchemyUserStore(User, login="username", is_active="active")
