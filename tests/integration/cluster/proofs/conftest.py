"""Fixtures of the cluster proofs: those of the single-broker proofs, and the cluster's.

The names, seeded random generator, report line, log folder and effect tables are the single-
broker proofs' own fixtures (:mod:`tests.integration.proofs.conftest`), reused as they are;
what differs is where the brokers are (:mod:`.support`).
"""

from __future__ import annotations

from tests.integration.proofs.conftest import (
    logs,
    names,
    postgres_effects,
    report,
    rng,
    sqlite_effects,
)

__all__ = ["logs", "names", "postgres_effects", "report", "rng", "sqlite_effects"]
