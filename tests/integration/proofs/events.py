"""Event types of the proofs (imported by the test process and by the app processes)."""

from __future__ import annotations

from eventplatform.schema import AvroEvent


class Deposit(AvroEvent, namespace="com.example.proofs"):
    """One unit of work: ``seq`` numbers it in publish order; ``poison`` makes handlers fail."""

    seq: int
    account: str
    poison: bool = False


class Receipt(AvroEvent, namespace="com.example.proofs"):
    """What the relay publishes for each deposit; ``input_id`` is the deposit's ``ce_id``."""

    input_id: str
    seq: int
