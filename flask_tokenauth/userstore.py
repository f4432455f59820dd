"""Where the users live: one small interface between the endpoints and the
accounts they log in.

In the spirit of Flask-Security's datastore and FastAPI-Users' user
database, the login, refresh, register and password endpoints, the CLI and
:data:`~flask_tokenauth.current_user` ask a :class:`UserStore` and nothing
else about users:

* :class:`BuiltinUserStore`, the zero-configuration default: the library's
  own ``tokenauth_users`` table, email login, bcrypt.
* :class:`SQLAlchemyUserStore`: the host application's own model
  (Flask-SQLAlchemy ``db.Model`` or plain declarative), its login column, its
  password hashes.

A user is named in tokens, sessions and refresh tokens by its ``sub``: the
canonical string of its primary key (decimal for an integer, lowercase
hyphenated for a UUID, the string itself otherwise), so that one user has
exactly one ``sub``.
"""

from ._builtin_store import BuiltinUserStore as BuiltinUserStore
from ._sqlalchemy_store import SQLAlchemyUserStore as SQLAlchemyUserStore
from ._store import UserStore as UserStore

__all__ = ["BuiltinUserStore", "SQLAlchemyUserStore", "UserStore"]
