"""The distribution's version, read by hatchling and ``eventplatform --version``."""

__version__ = "0.1.0"
