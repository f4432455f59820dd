"""The model of the Flask-JWT-Extended app of ``tests/fje_app.py`` and of its
conversion (``tests/fje_converted_app.py``): a move to flask_tokenauth keeps
the app's users, their werkzeug hashes and its own columns as they are."""

from __future__ import annotations

from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

db = SQLAlchemy()
Model: Any = db.Model


class Account(Model):
    __tablename__ = "fje_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="member")
