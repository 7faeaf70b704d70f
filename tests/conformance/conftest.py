"""Conformance tests: request shapes taken from the clients' own public sources (Adobe's SDKs
and documentation), each test naming its source, sent through the real processes."""

from tests.harness import nats_server, system  # noqa: F401  (pytest fixtures)
