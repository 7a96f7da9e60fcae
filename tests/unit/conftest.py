"""The journal's tests run on both backends: the ``backend`` fixture (tests/journal_backends.py)
is SQLite, then PostgreSQL on a fresh database."""

from tests.journal_backends import backend  # noqa: F401  (a fixture, registered here)
