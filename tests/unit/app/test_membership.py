"""StaticMembership: one lost membership is a restart; two in a window are a live twin."""

from __future__ import annotations

from eventplatform.app.membership import StaticMembership, member_id_of
from eventplatform.errors import InstanceFenced, KafkaError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watch(clock: Clock) -> StaticMembership:
    return StaticMembership(group_id="billing", instance_id="pod-0", window=30.0, clock=clock)


def test_the_first_join_and_ordinary_rebalances_rejoin() -> None:
    membership = watch(Clock())
    assert membership.rejoining("") is False  # the first join: nothing held yet
    membership.joined("pod-0-a")
    assert membership.rejoining("pod-0-a") is False  # another member joined: a rebalance
    membership.joined("pod-0-a")
    assert membership.fenced is None


def test_one_lost_membership_rejoins() -> None:
    clock = Clock()
    membership = watch(clock)
    membership.joined("pod-0-a")
    clock.now = 5
    assert membership.rejoining("") is False  # session expired, or a twin: join again
    membership.joined("pod-0-b")
    assert membership.fenced is None


def test_two_lost_memberships_within_the_window_mean_a_twin() -> None:
    clock = Clock()
    membership = watch(clock)
    membership.joined("pod-0-a")
    clock.now = 5
    assert membership.rejoining("") is False
    membership.joined("pod-0-b")
    clock.now = 6
    assert membership.rejoining("") is True
    fenced = membership.fenced
    assert isinstance(fenced, InstanceFenced)
    assert isinstance(fenced, KafkaError)
    assert (fenced.group, fenced.instance_id) == ("billing", "pod-0")
    assert "'pod-0'" in str(fenced)
    assert "'billing'" in str(fenced)
    assert "--instance-id" in str(fenced)
    assert membership.rejoining("") is True  # stays out for good


def test_losses_further_apart_than_the_window_are_not_a_twin() -> None:
    clock = Clock()
    membership = watch(clock)
    membership.joined("pod-0-a")
    clock.now = 5
    assert membership.rejoining("") is False
    membership.joined("pod-0-b")
    clock.now = 100
    assert membership.rejoining("") is False
    membership.joined("pod-0-c")
    assert membership.fenced is None
    clock.now = 101
    assert membership.rejoining("") is True


def test_member_id_of_reads_the_coordinator_or_gives_empty() -> None:
    class Coordinator:
        member_id = "m-1"

    class Consumer:
        _coordinator = Coordinator()

    assert member_id_of(Consumer()) == "m-1"
    assert member_id_of(object()) == ""
