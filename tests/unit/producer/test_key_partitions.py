"""Key → partition choices are remembered per topic, and forgotten when partitions change."""

from __future__ import annotations

from eventplatform.producer.batching import KeyPartitions


def test_choices_persist_per_topic_while_partitions_stay() -> None:
    known = KeyPartitions()
    orders = known.for_topic("orders", [0, 1, 2])
    orders[b"customer-1"] = 2
    assert known.for_topic("orders", [0, 1, 2]) == {b"customer-1": 2}
    assert known.for_topic("payments", [0, 1, 2]) == {}


def test_choices_are_dropped_when_partitions_change_or_too_many() -> None:
    known = KeyPartitions(max_keys=3)
    known.for_topic("orders", [0, 1, 2])[b"k"] = 1
    # A partition was added: murmur2 maps keys anew.
    assert known.for_topic("orders", [0, 1, 2, 3]) == {}
    choices = known.for_topic("orders", [0, 1, 2, 3])
    choices.update({bytes([n]): n % 4 for n in range(4)})
    assert known.for_topic("orders", [0, 1, 2, 3]) == {}
