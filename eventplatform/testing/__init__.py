"""Test support for services built on eventplatform: a pytest plugin with a real broker.

The plugin (:mod:`eventplatform.testing.pytest_plugin`) is registered through the ``pytest11``
entry point, so installing eventplatform makes its fixtures available to any test suite.
"""
