"""Reach report tests: the console's world (an agency, its police, an operator) and a client."""

from tests.integration.console.conftest import console  # noqa: F401
