"""Benchmarks of flask_tokenauth (issue 4): ``python -m benchmarks --help``.

Nothing here is imported by the library or the tests.  The package stays
light to import: gunicorn loads :mod:`benchmarks.apps` from it.
"""
