"""Runs the registry contract (``contract.py``) against every backend in ``conftest.py``."""

from tests.integration.registry.contract import *  # noqa: F403
