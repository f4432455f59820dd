"""Benchmarks of flask_tokenauth: ``python -m benchmarks --help``, README.md.

Nothing here is imported by the library or the tests; gunicorn loads
:mod:`benchmarks.app` from it.
"""
