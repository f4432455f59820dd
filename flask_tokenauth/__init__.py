"""flask_tokenauth: access/refresh token authentication for Flask.

::

    from flask_tokenauth import auth_bp, login_required, current_user

    app.register_blueprint(auth_bp)

    @app.get("/api/profile")
    @login_required
    def profile():
        return {"user": {"id": current_user.id, "email": current_user.email}}
"""

from . import signals as signals
from ._keys import KeySet as KeySet
from ._keys import SigningKey as SigningKey
from ._login import login_user as login_user
from ._sessions import revoke_user_sessions as revoke_user_sessions
from ._verification import is_email_verified as is_email_verified
from ._version import __version__ as __version__
from .decorators import login_required as login_required
from .errors import AuthenticationError as AuthenticationError
from .errors import ConfigurationError as ConfigurationError
from .errors import CrossSiteRequest as CrossSiteRequest
from .errors import DatabaseNotMigrated as DatabaseNotMigrated
from .errors import DatabaseUnavailable as DatabaseUnavailable
from .errors import EmailNotVerified as EmailNotVerified
from .errors import EmailTaken as EmailTaken
from .errors import InvalidCredentials as InvalidCredentials
from .errors import InvalidEmail as InvalidEmail
from .errors import InvalidJSON as InvalidJSON
from .errors import InvalidPassword as InvalidPassword
from .errors import PasswordHasContextWord as PasswordHasContextWord
from .errors import PasswordTooCommon as PasswordTooCommon
from .errors import RateLimited as RateLimited
from .errors import RefreshTokenAmbiguous as RefreshTokenAmbiguous
from .errors import RefreshTokenError as RefreshTokenError
from .errors import RefreshTokenExpired as RefreshTokenExpired
from .errors import RefreshTokenInvalid as RefreshTokenInvalid
from .errors import RefreshTokenMissing as RefreshTokenMissing
from .errors import RefreshTokenReused as RefreshTokenReused
from .errors import RefreshTokenRevoked as RefreshTokenRevoked
from .errors import RevocationStoreUnavailable as RevocationStoreUnavailable
from .errors import SessionNotFound as SessionNotFound
from .errors import TokenAuthError as TokenAuthError
from .errors import TokenExpired as TokenExpired
from .errors import TokenInvalid as TokenInvalid
from .errors import TokenMissing as TokenMissing
from .errors import TokenRevoked as TokenRevoked
from .errors import UserNotFound as UserNotFound
from .errors import ValidationError as ValidationError
from .errors import WrongPassword as WrongPassword
from .extension import TokenAuth as TokenAuth
from .globals import current_claims as current_claims
from .globals import current_user as current_user
from .globals import current_user_as as current_user_as
from .integrations import init_flask_login as init_flask_login
from .migration_helpers import alembic_include_name as alembic_include_name
from .migration_helpers import alembic_include_object as alembic_include_object
from .migration_helpers import tokenauth_tables as tokenauth_tables
from .models import AnonymousUser as AnonymousUser
from .models import RefreshToken as RefreshToken
from .models import Session as Session
from .models import User as User
from .models import UserMixin as UserMixin
from .testing import TokenAuthClient as TokenAuthClient
from .testing import auth_headers as auth_headers
from .userstore import BuiltinUserStore as BuiltinUserStore
from .userstore import SQLAlchemyUserStore as SQLAlchemyUserStore
from .userstore import UserStore as UserStore
from .views import auth_bp as auth_bp
from .views.client import client_script_url as client_script_url

__all__ = [
    "AnonymousUser",
    "AuthenticationError",
    "BuiltinUserStore",
    "ConfigurationError",
    "CrossSiteRequest",
    "DatabaseNotMigrated",
    "DatabaseUnavailable",
    "EmailNotVerified",
    "EmailTaken",
    "InvalidCredentials",
    "InvalidEmail",
    "InvalidJSON",
    "InvalidPassword",
    "KeySet",
    "PasswordHasContextWord",
    "PasswordTooCommon",
    "RateLimited",
    "RefreshToken",
    "RefreshTokenAmbiguous",
    "RefreshTokenError",
    "RefreshTokenExpired",
    "RefreshTokenInvalid",
    "RefreshTokenMissing",
    "RefreshTokenReused",
    "RefreshTokenRevoked",
    "RevocationStoreUnavailable",
    "SQLAlchemyUserStore",
    "Session",
    "SessionNotFound",
    "SigningKey",
    "TokenAuth",
    "TokenAuthClient",
    "TokenAuthError",
    "TokenExpired",
    "TokenInvalid",
    "TokenMissing",
    "TokenRevoked",
    "User",
    "UserMixin",
    "UserNotFound",
    "UserStore",
    "ValidationError",
    "WrongPassword",
    "alembic_include_name",
    "alembic_include_object",
    "auth_bp",
    "auth_headers",
    "client_script_url",
    "current_claims",
    "current_user",
    "current_user_as",
    "init_flask_login",
    "is_email_verified",
    "login_required",
    "login_user",
    "revoke_user_sessions",
    "signals",
    "tokenauth_tables",
]
