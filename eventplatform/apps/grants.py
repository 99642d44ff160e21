"""What an app may do, as Kafka ACLs: a pure model with no I/O.

An app is a SCRAM user ``User:NAME`` and the ACLs that allow it (KIP-11, with the prefixed
resource patterns of KIP-290). :class:`AppGrants` turns ``--read``/``--write``/``--group``
into the ACLs; :func:`summarise` turns the ACLs a cluster holds back into the same shape for
``apps list``.

What each grant allows, and why it is enough (Kafka's authoriser; DESCRIBE is implied by READ,
WRITE, DELETE and ALTER, so it is not created separately):

* ``--read T``: READ on topic T: fetch, list offsets, metadata.
* ``--write T``: WRITE on topic T: produce, and since Kafka 3.0 (KIP-679) an idempotent
  producer's InitProducerId, which needs IDEMPOTENT_WRITE on the cluster *or* WRITE on any
  topic; so no cluster-wide grant is made.
* the group prefix (default: the app's name, literally and followed by ``.``): READ on those
  consumer groups (join, fetch and commit offsets, ``send_offsets_to_transaction``).
* the same prefix for transactional ids: WRITE on them (InitProducerId with an id, AddPartitions,
  EndTxn). An EventApp's transactional id is ``GROUP.INSTANCE``, which the prefix covers.
* its dead letters: WRITE on ``T.dlq`` for each read topic T (the EventApp's dead-letter
  topic, ``consumer.dlq_suffix``), without which one poison event stalls the app; not for
  prefixed or wildcard reads, whose dead-letter topics a suffix cannot name.
* the schema registry's log topic (the Kafka-log registry), READ only: an app resolves schemas
  but never writes the log; the operator registers its schemas.

A topic ending in ``*`` is a prefix (``orders.*`` → every topic starting ``orders.``); ``*``
alone is Kafka's wildcard, every topic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "Acl",
    "AppGrants",
    "AppSummary",
    "Operation",
    "PatternType",
    "Permission",
    "ResourceType",
    "summarise",
    "validate_name",
]


class ResourceType(IntEnum):
    """Kafka's ``ResourceType`` ids."""

    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class PatternType(IntEnum):
    """Kafka's ``PatternType`` ids (KIP-290)."""

    ANY = 1
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    """Kafka's ``AclOperation`` ids (those an app's grants use or a listing may show)."""

    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


class Permission(IntEnum):
    """Kafka's ``AclPermissionType`` ids."""

    ANY = 1
    DENY = 2
    ALLOW = 3


_KIND = {
    ResourceType.TOPIC: "topic",
    ResourceType.GROUP: "group",
    ResourceType.CLUSTER: "cluster",
    ResourceType.TRANSACTIONAL_ID: "transactional id",
}

# Kafka's legal topic characters; group ids and user names are looser, but an app name is
# also a group and transactional-id prefix, so it keeps to the strictest of them.
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def validate_name(name: str, *, what: str = "app name") -> str:
    """``name`` if it is a usable app name (``[A-Za-z0-9._-]``, 1-200 characters).

    Raises:
        ValueError: it is not.
    """
    if not _NAME.match(name) or name in (".", ".."):
        raise ValueError(
            f"{what} {name!r} must be 1-200 characters of letters, digits, '.', '_' and '-'"
        )
    return name


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    """One ALLOW (or DENY) ACL entry of a principal, on any host."""

    resource_type: ResourceType
    name: str
    pattern: PatternType
    operation: Operation
    permission: Permission = Permission.ALLOW
    host: str = "*"

    def describe(self) -> str:
        """``READ topic 'orders'`` or ``WRITE transactional id 'billing.*'`` (prefixes end in *)."""
        kind = _KIND.get(self.resource_type, self.resource_type.name.lower())
        where = "" if self.resource_type == ResourceType.CLUSTER else f" {self.resource()!r}"
        deny = "DENY " if self.permission == Permission.DENY else ""
        return f"{deny}{self.operation.name} {kind}{where}"

    def resource(self) -> str:
        """The resource name as the CLI writes it: a prefix with ``*`` appended."""
        return f"{self.name}*" if self.pattern == PatternType.PREFIXED else self.name


def _topic_pattern(topic: str) -> tuple[str, PatternType]:
    if topic == "*":
        return "*", PatternType.LITERAL  # Kafka's wildcard: every topic
    if topic.endswith("*"):
        prefix = topic[:-1]
        if not prefix or "*" in prefix:
            raise ValueError(f"topic pattern {topic!r}: only a trailing '*' is a prefix")
        return validate_name(prefix, what="topic prefix"), PatternType.PREFIXED
    return validate_name(topic, what="topic"), PatternType.LITERAL


@dataclass(frozen=True, slots=True)
class AppGrants:
    """What ``apps add`` grants an app.

    Attributes:
        name: the app, and its SCRAM user name; its principal is ``User:NAME``.
        read: topics it may consume (a trailing ``*`` makes a prefix).
        write: topics it may produce to.
        group_prefix: the consumer-group and transactional-id prefix; None: the app's name,
            as the group itself and followed by ``.`` (never a bare prefix, which would hand
            app ``pay`` the groups of app ``payroll``).
        registry_topic: the Kafka-log registry's topic to read, or None.
        dlq_suffix: WRITE on ``T + dlq_suffix`` for each literal read topic ``T``, where an
            EventApp dead-letters what it cannot handle (``consumer.dlq_suffix``); None: none.
    """

    name: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    group_prefix: str | None = None
    registry_topic: str | None = None
    dlq_suffix: str | None = ".dlq"

    def __post_init__(self) -> None:
        validate_name(self.name)
        for topic in (*self.read, *self.write):
            _topic_pattern(topic)
        if self.group_prefix is not None and not self.group_prefix.strip():
            raise ValueError("the group prefix must not be empty")

    @property
    def principal(self) -> str:
        """``User:NAME``."""
        return f"User:{self.name}"

    @property
    def group_id(self) -> str:
        """The consumer group the printed configuration uses: inside the granted prefix."""
        if self.group_prefix is None:
            return self.name
        return f"{self.group_prefix}{self.name}"

    def _prefixes(self) -> list[tuple[str, PatternType]]:
        if self.group_prefix is None:
            return [(self.name, PatternType.LITERAL), (f"{self.name}.", PatternType.PREFIXED)]
        return [(self.group_prefix, PatternType.PREFIXED)]

    def acls(self) -> list[Acl]:
        """The ACLs, in a stable order, without duplicates."""
        acls: list[Acl] = []
        for topic in self.read:
            name, pattern = _topic_pattern(topic)
            acls.append(Acl(ResourceType.TOPIC, name, pattern, Operation.READ))
        for topic in self.write:
            name, pattern = _topic_pattern(topic)
            acls.append(Acl(ResourceType.TOPIC, name, pattern, Operation.WRITE))
        if self.dlq_suffix:
            for topic in self.read:
                name, pattern = _topic_pattern(topic)
                if pattern == PatternType.LITERAL and name != "*":
                    dead = f"{name}{self.dlq_suffix}"
                    acls.append(Acl(ResourceType.TOPIC, dead, PatternType.LITERAL, Operation.WRITE))
        if self.registry_topic is not None:
            acls.append(
                Acl(ResourceType.TOPIC, self.registry_topic, PatternType.LITERAL, Operation.READ)
            )
        for name, pattern in self._prefixes():
            acls.append(Acl(ResourceType.GROUP, name, pattern, Operation.READ))
            if self.write:  # a transaction produces its output: only for apps that write
                acls.append(Acl(ResourceType.TRANSACTIONAL_ID, name, pattern, Operation.WRITE))
        return list(dict.fromkeys(acls))


@dataclass(frozen=True, slots=True)
class AppSummary:
    """An app as the cluster holds it: its credential's mechanisms and its ACLs.

    Attributes:
        name: the user name.
        mechanisms: its SCRAM mechanisms with their iterations (``SCRAM-SHA-512``: 8192).
        acls: every ACL whose principal is ``User:NAME``.
    """

    name: str
    mechanisms: dict[str, int] = field(default_factory=dict)
    acls: tuple[Acl, ...] = ()

    def _names(self, resource_type: ResourceType, *operations: Operation) -> list[str]:
        return sorted(
            {
                acl.resource()
                for acl in self.acls
                if acl.resource_type == resource_type
                and acl.operation in (*operations, Operation.ALL)
                and acl.permission == Permission.ALLOW
            }
        )

    @property
    def reads(self) -> list[str]:
        """Topics it may read."""
        return self._names(ResourceType.TOPIC, Operation.READ)

    @property
    def writes(self) -> list[str]:
        """Topics it may write."""
        return self._names(ResourceType.TOPIC, Operation.WRITE)

    @property
    def groups(self) -> list[str]:
        """Consumer groups it may use."""
        return self._names(ResourceType.GROUP, Operation.READ)

    @property
    def transactional_ids(self) -> list[str]:
        """Transactional ids it may use."""
        return self._names(ResourceType.TRANSACTIONAL_ID, Operation.WRITE)

    @property
    def other(self) -> list[str]:
        """ACLs that none of the four columns above shows (cluster grants, DENY entries …)."""
        shown = {
            (ResourceType.TOPIC, Operation.READ),
            (ResourceType.TOPIC, Operation.WRITE),
            (ResourceType.GROUP, Operation.READ),
            (ResourceType.TRANSACTIONAL_ID, Operation.WRITE),
        }
        return [
            acl.describe()
            for acl in sorted(self.acls)
            if (acl.resource_type, acl.operation) not in shown or acl.permission != Permission.ALLOW
        ]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (``apps list --json``)."""
        return {
            "name": self.name,
            "principal": f"User:{self.name}",
            "mechanisms": dict(self.mechanisms),
            "read": self.reads,
            "write": self.writes,
            "groups": self.groups,
            "transactional_ids": self.transactional_ids,
            "other": self.other,
        }


def summarise(
    credentials: dict[str, dict[str, int]], acls: Iterable[tuple[str, Acl]]
) -> list[AppSummary]:
    """The apps among SCRAM users (name → mechanism → iterations) and ACLs (principal, ACL).

    An app is a SCRAM user that holds at least one ACL as ``User:NAME``: a super user needs no
    ACLs and a user with none can do nothing, so neither is an app.
    """
    by_user: dict[str, list[Acl]] = {}
    for principal, acl in acls:
        kind, _, user = principal.partition(":")
        if kind == "User" and user in credentials:
            by_user.setdefault(user, []).append(acl)
    return [
        AppSummary(name, dict(credentials[name]), tuple(sorted(by_user[name])))
        for name in sorted(by_user)
    ]


def filters_for(principal: str) -> Sequence[tuple[object, ...]]:
    """A DescribeAcls/DeleteAcls filter matching every ACL of ``principal``."""
    return [
        (ResourceType.ANY, None, PatternType.ANY, principal, None, Operation.ANY, Permission.ANY)
    ]
