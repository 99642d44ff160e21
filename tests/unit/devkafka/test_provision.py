"""Which broker path is chosen, given settings and what the machine offers."""

from __future__ import annotations

import pytest

from eventplatform.devkafka import Choice, Probe, Provider, choose
from eventplatform.devkafka.local import min_heap, parse_java_version
from eventplatform.errors import JavaNotFound, JavaTooOld, NoBrokerAvailable
from eventplatform.settings import DevKafkaSettings, KafkaSettings, Settings


def settings(servers: str | None = None, provider: str = "auto") -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=servers),
        devkafka=DevKafkaSettings(provider=provider),  # type: ignore[arg-type]
    )


def probe(docker: bool = False, java: int | None = None, maven: bool = False) -> Probe:
    return Probe(docker=docker, java_major=java, maven=maven, docker_detail="docker: test")


def never() -> Probe:
    raise AssertionError("the machine must not be probed when servers are configured")


def test_configured_servers_win_without_probing() -> None:
    choice = choose(settings("kafka-1:9092,kafka-2:9092"), never)
    assert choice == Choice(Provider.EXTERNAL, "kafka-1:9092,kafka-2:9092", choice.reason)


def test_docker_preferred_over_java() -> None:
    assert choose(settings(), lambda: probe(True, 17, True)).provider is Provider.DOCKER


def test_java_and_maven_without_docker() -> None:
    assert choose(settings(), lambda: probe(False, 21, True)).provider is Provider.LOCAL


def test_forced_local_skips_docker() -> None:
    chosen = choose(settings(provider="local"), lambda: probe(True, 17, True))
    assert chosen.provider is Provider.LOCAL


def test_forced_docker_without_engine_names_the_cause() -> None:
    with pytest.raises(NoBrokerAvailable, match="provider is 'docker'"):
        choose(settings(provider="docker"), lambda: probe(False, 17, True))


@pytest.mark.parametrize(
    ("java", "maven", "expected"),
    [
        (None, True, "no java found"),
        (11, True, "java is version 11, Kafka needs 17+"),
        (17, False, "no mvn found"),
        (None, False, "no java found, no mvn found"),
    ],
)
def test_nothing_available_says_what_is_missing_and_how(
    java: int | None, maven: bool, expected: str
) -> None:
    with pytest.raises(NoBrokerAvailable) as info:
        choose(settings(), lambda: probe(False, java, maven))
    message = str(info.value)
    assert expected in message
    for remedy in ("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", "Docker", "Java 17+ and Maven"):
        assert remedy in message


def test_forced_local_with_old_java() -> None:
    with pytest.raises(JavaTooOld, match="version 8"):
        choose(settings(provider="local"), lambda: probe(False, 8, True))


def test_forced_local_without_java() -> None:
    with pytest.raises(JavaNotFound, match="no java"):
        choose(settings(provider="local"), lambda: probe(False, None, True))


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_402"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no version here", None),
    ],
)
def test_java_version_parsing(output: str, major: int | None) -> None:
    assert parse_java_version(output) == major


def test_initial_heap_is_a_quarter_with_a_floor() -> None:
    assert min_heap("512m") == "128m"
    assert min_heap("2g") == "512m"
    assert min_heap("128m") == "64m"


def test_cluster_ids_never_look_like_options() -> None:
    from eventplatform.devkafka.local import new_cluster_id

    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)
