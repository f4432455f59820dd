"""An existing Flask app (Flask-SQLAlchemy, Flask-Migrate, Flask-Login,
Flask-WTF) that adds flask_tokenauth to its ``/api``: see ``app.py``."""
