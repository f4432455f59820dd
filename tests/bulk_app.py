"""A host app for ``tests/test_bulk_revocation_http.py``: its own ``members``
model as the user store, and a route that deletes or disables members with
one ORM bulk statement, as an admin view of the host would."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response
from sqlalchemy import Boolean, Integer, String, create_engine, delete, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from flask_tokenauth import TokenAuth, auth_bp, current_claims, login_required
from flask_tokenauth._config import config_from_environ
from flask_tokenauth.userstore import SQLAlchemyUserStore


class Base(DeclarativeBase):
    pass


class Member(Base):
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(config_from_environ())
    engine = create_engine(os.environ["TOKENAUTH_DATABASE_URL"])
    store = SQLAlchemyUserStore(
        Member, login="username", is_active="active", session=lambda: Session(engine)
    )
    TokenAuth(user_store=store).init_app(app)
    app.register_blueprint(auth_bp)

    @app.get("/api/health")
    def health() -> Any:
        return {"status": "ok"}

    @app.get("/test/claims")
    @login_required
    def claims() -> Any:
        """Never loads the user: only the revocation store can refuse."""
        return {"sub": current_claims["sub"]}

    @app.post("/test/<how>/<username>")
    def bulk(how: str, username: str) -> Any:
        where = Member.username == username
        with Session(engine) as session:
            if how == "delete":
                session.execute(delete(Member).where(where))
            else:
                session.execute(update(Member).where(where).values(active=False))
            session.commit()
        return {}

    @app.after_request
    def worker(response: Response) -> Response:
        response.headers["X-Worker"] = str(os.getpid())
        return response

    return app
