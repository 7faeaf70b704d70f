"""Fixtures for integration tests; the harness itself is `tests/harness.py`."""

from tests.harness import nats_server, system  # noqa: F401  (pytest fixtures)
