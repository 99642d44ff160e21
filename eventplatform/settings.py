"""Settings: environment, ``eventplatform.toml`` and ``[tool.eventplatform]`` in pyproject.

Values resolve in this order (first wins): keyword arguments, environment variables
(``EVENTPLATFORM_`` prefix, nested with ``__``, e.g. ``EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS``),
``eventplatform.toml`` in the working directory, the ``[tool.eventplatform]`` table of
``pyproject.toml``, then defaults. The common ``KAFKA_BOOTSTRAP_SERVERS`` is honoured when the
prefixed variable is not set.

Unknown keys are errors, in files and in the environment alike, so that a misspelt setting
fails at start with its name instead of being silently ignored; an invalid value is blamed on
where it came from (the variable, or the file and key).

Secrets (``kafka.sasl_password``) are :class:`~pydantic.SecretStr`: reprs, ``model_dump()``
and ``model_dump_json()`` show ``**********``, and the one place that hands them to a client
(:meth:`KafkaSettings.connection_options`) unwraps them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    PyprojectTomlConfigSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from eventplatform.errors import ConfigurationError

__all__ = [
    "ConsumerSettings",
    "DevKafkaSettings",
    "IdempotencySettings",
    "KafkaSettings",
    "ObservabilitySettings",
    "ProducerSettings",
    "RegistrySettings",
    "RetrySettings",
    "Settings",
    "UpSettings",
    "load_settings",
]

ENV_PREFIX = "EVENTPLATFORM_"
#: Variables for the test tooling (e.g. EVENTPLATFORM_TEST_POSTGRES_DSN), not settings.
TEST_ENV_PREFIX = "EVENTPLATFORM_TEST_"
#: The SASL mechanisms settings can configure: those that take a username and a password.
#: aiokafka also speaks GSSAPI and OAUTHBEARER, which need the gssapi library and Kerberos
#: options, or a token-provider object: nothing a settings file can hold.
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SASL_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def parse_bootstrap_servers(value: str) -> list[tuple[str, int]]:
    """Split ``host:port[,host:port…]`` into pairs.

    Raises:
        ValueError: an entry is not ``host:port`` or its port is out of range.
    """
    pairs: list[tuple[str, int]] = []
    for raw in value.split(","):
        entry = raw.strip()
        if entry.startswith("PLAINTEXT://"):
            entry = entry.removeprefix("PLAINTEXT://")
        match = _HOST_PORT.match(entry)
        if not match:
            raise ValueError(f"{raw.strip()!r} is not host:port")
        port = int(match.group(1))
        if not 0 < port < 65536:
            raise ValueError(f"{raw.strip()!r} has port {port} outside 1-65535")
        host = entry[: match.start(1) - 1].strip("[]")
        pairs.append((host, port))
    if not pairs:
        raise ValueError("no servers given")
    return pairs


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """How to reach the Kafka cluster."""

    bootstrap_servers: str | None = Field(
        default=None,
        description="Comma-separated host:port list; when unset a broker is provisioned.",
    )
    client_id: str = "eventplatform"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        default=None,
        description="A file (mode 0600) holding the SASL password, read at connect; instead "
        "of sasl_password, so that the password itself appears in no file of settings.",
    )
    ssl_cafile: Path | None = Field(
        default=None, description="CA certificate(s) to trust (PEM); unset: the system's."
    )
    ssl_certfile: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    ssl_keyfile: Path | None = Field(default=None, description="Its private key (PEM).")
    ssl_password: SecretStr | None = Field(
        default=None, description="Password of an encrypted ssl_keyfile."
    )
    ssl_check_hostname: bool = True
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Replicas of the topics eventplatform creates; unset: min(3, brokers).",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="min.insync.replicas of the topics eventplatform creates; unset: 2 from "
        "three replicas on, else 1.",
    )

    def topic_replication(self, brokers: int) -> tuple[int, int]:
        """(replication factor, ``min.insync.replicas``) of a topic created on ``brokers``.

        Unset settings follow the cluster: three copies where it has three brokers, and two
        of them in sync for ``acks=all`` (one broker may fail); a single broker stays 1/1.
        """
        replicas = self.replication_factor or max(1, min(3, brokers))
        min_isr = self.min_insync_replicas or (2 if replicas >= 3 else 1)
        return replicas, min_isr

    def connection_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments for reaching the cluster, besides its bootstrap servers.

        ``client_id``, ``security_protocol``, an SSL context for the TLS protocols (trusting
        ``ssl_cafile``, presenting ``ssl_certfile`` for mutual TLS) and the SASL credentials:
        what every producer, consumer and admin client of the library shares.

        Raises:
            ConfigurationError: a TLS file cannot be read or does not hold what it should.
        """
        options: dict[str, Any] = {
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self._ssl_context()
        if self.sasl_mechanism is not None:
            password = self.password()
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                # The boundary: only the client ever sees the password itself.
                "sasl_plain_password": password.get_secret_value() if password else None,
            }
        return options

    def password(self) -> SecretStr | None:
        """The SASL password: ``sasl_password``, else what ``sasl_password_file`` holds.

        The file is read on every call, so a rotated password is picked up by the next
        connection without a restart.

        Raises:
            ConfigurationError: the file cannot be read or is empty.
        """
        if self.sasl_password is not None or self.sasl_password_file is None:
            return self.sasl_password
        path = self.sasl_password_file
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read the SASL password file {path} (kafka.sasl_password_file): "
                f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        if not text:
            raise ConfigurationError(
                f"the SASL password file {path} (kafka.sasl_password_file) is empty"
            )
        return SecretStr(text)

    def _ssl_context(self) -> Any:
        from aiokafka.helpers import create_ssl_context  # noqa: PLC0415 - only for TLS

        key_password = self.ssl_password.get_secret_value() if self.ssl_password else None
        try:
            context = create_ssl_context(
                cafile=self.ssl_cafile,
                certfile=self.ssl_certfile,
                keyfile=self.ssl_keyfile,
                password=key_password,
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            files = ", ".join(
                f"kafka.{name}={path}"
                for name, path in (
                    ("ssl_cafile", self.ssl_cafile),
                    ("ssl_certfile", self.ssl_certfile),
                    ("ssl_keyfile", self.ssl_keyfile),
                )
                if path is not None
            )
            raise ConfigurationError(
                f"cannot set up TLS from {files or 'the system trust store'}: "
                f"{type(exc).__name__}: {exc}"
            ) from None  # not chained: an SSL error can quote the key password's prompt
        context.check_hostname = self.ssl_check_hostname
        return context

    @field_validator("sasl_mechanism", mode="before")
    @classmethod
    def _check_mechanism(cls, value: Any) -> Any:
        # Checked whatever the security protocol: a misspelt mechanism under PLAINTEXT is
        # still a mistake, found now rather than when the protocol is switched to SASL.
        if value is None or value in SASL_MECHANISMS:
            return value
        why = {
            "GSSAPI": " (GSSAPI needs the gssapi library and Kerberos options)",
            "OAUTHBEARER": " (OAUTHBEARER needs a token-provider object)",
        }.get(value if isinstance(value, str) else "", "")
        raise ValueError(
            f"{value!r} is not a SASL mechanism settings can configure{why}; "
            f"valid names: {', '.join(SASL_MECHANISMS)}"
        )

    @model_validator(mode="after")
    def _one_password(self) -> KafkaSettings:
        if self.sasl_password is not None and self.sasl_password_file is not None:
            raise ValueError("set kafka.sasl_password or kafka.sasl_password_file, not both")
        return self

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_bootstrap_servers(value)
        return ",".join(s.strip() for s in value.split(","))


class DevKafkaSettings(_Section):
    """How a development/test broker is provisioned when no cluster is configured."""

    provider: Literal["auto", "docker", "local"] = Field(
        default="auto",
        description="auto tries Docker, then Java + Maven; docker or local forces one path.",
    )
    version: str = Field(default="4.4.0", pattern=r"^\d+\.\d+\.\d+$")
    image: str = "apache/kafka:4.4.0"
    start_timeout: float = Field(default=120.0, gt=0)
    resolve_timeout: float = Field(default=900.0, gt=0)
    cache_dir: Path | None = None
    heap: str | None = Field(
        default=None,
        pattern=r"^\d+[kmgKMG]$",
        description="Each broker's JVM heap; unset: 512m for one broker, 384m each in a cluster.",
    )
    brokers: int = Field(
        default=1, ge=1, le=9, description="Nodes of the local cluster (3 for replication)."
    )
    security: Literal["plaintext", "sasl_ssl"] = Field(
        default="plaintext",
        description="sasl_ssl: TLS with a throwaway CA, SCRAM-SHA-512 users and ACLs.",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Broker port; unset: a free one."
    )
    controller_port: int | None = Field(
        default=None, ge=1, le=65535, description="KRaft controller port; unset: a free one."
    )
    data_dir: Path | None = Field(
        default=None,
        description="Keep the broker's storage here across runs; unset: a temporary folder.",
    )


class UpSettings(_Section):
    """The fixed addresses of ``eventplatform up`` (a development deployment).

    The webhook ingress ports are in the connector files (``connectors/*.toml``).
    """

    kafka_port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    registry_port: int = Field(default=8081, ge=0, le=65535, description="0: a free port.")


class RegistrySettings(_Section):
    """Which schema registry to use and how serializers use it."""

    url: str | None = Field(
        default=None,
        description="A Confluent-compatible REST registry; unset = the embedded Kafka-log one.",
    )
    username: str | None = Field(
        default=None, description="HTTP basic auth user (Confluent: basic.auth.user.info)."
    )
    password: SecretStr | None = Field(default=None, description="HTTP basic auth password.")
    ssl_cafile: Path | None = Field(
        default=None,
        description="CA certificate(s) an https url must verify against (PEM); unset: the "
        "system's (Confluent: schema.registry.ssl.ca.location).",
    )
    ssl_certfile: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS to the registry."
    )
    ssl_keyfile: Path | None = Field(default=None, description="Its private key (PEM).")
    server_certfile: Path | None = Field(
        default=None,
        description="`registry serve` and `up` serve HTTPS with this certificate chain (PEM; "
        "may hold the key too).",
    )
    server_keyfile: Path | None = Field(
        default=None, description="The server certificate's private key (PEM)."
    )
    topic: str = Field(default="_eventplatform_schemas", description="Kafka-log registry topic.")
    timeout: float = Field(default=10.0, gt=0)
    auto_register: bool = Field(
        default=True, description="Register an event's schema on first publish if missing."
    )
    subject_strategy: Literal["topic", "record", "topic_record"] = "topic"

    def password_value(self) -> str | None:
        """The password in clear, for the one place that sends it (HTTP basic auth)."""
        return self.password.get_secret_value() if self.password is not None else None


class ProducerSettings(_Section):
    """How events are published (aiokafka producer settings and CloudEvents defaults)."""

    source: str = Field(default="/eventplatform", description="Default CloudEvents source.")
    enable_idempotence: bool = True
    linger_ms: int = Field(default=5, ge=0)
    max_batch_size: int = Field(default=1 << 16, gt=0, description="Bytes per partition batch.")
    max_request_size: int = Field(default=1 << 20, gt=0)
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    delivery_timeout: float = Field(
        default=30.0, gt=0, description="Seconds before an unacknowledged publish fails."
    )
    transactional_id: str | None = None


class RetrySettings(_Section):
    """Exponential backoff for retriable handler failures, before dead-lettering."""

    max_attempts: int = Field(default=5, ge=1)
    initial_backoff: float = Field(default=0.2, ge=0)
    max_backoff: float = Field(default=10.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)


class ConsumerSettings(_Section):
    """How an EventApp consumes."""

    group_id: str | None = None
    instance_id: str | None = Field(
        default=None,
        description="Stable name of this instance (a StatefulSet pod name); turns on static "
        "group membership (KIP-345): a restarted instance takes its partitions back at once.",
    )
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(default=500, gt=0)
    max_concurrency: int = Field(
        default=16, gt=0, description="Events of different keys handled at once per partition."
    )
    inbox_transactions: Literal["auto", "event", "poll"] = Field(
        default="auto",
        description="Inbox handlers on PostgreSQL: one transaction per event (concurrent, for "
        "handlers that wait on I/O), or per poll (cheapest for handlers that do not wait); auto "
        "is per event when max_concurrency > 1. SQLite is always per poll (one writer).",
    )
    handler_timeout: float = Field(default=30.0, gt=0)
    session_timeout_ms: int = Field(default=10_000, gt=0)
    heartbeat_interval_ms: int = Field(default=3_000, gt=0)
    dlq_suffix: str = ".dlq"
    retry: RetrySettings = RetrySettings()
    topic_sources: dict[str, str] = Field(
        default_factory=dict,
        description="CloudEvents source of records without ce_* headers, by topic "
        "(default /topics/<topic>).",
    )


class IdempotencySettings(_Section):
    """Where handled idempotency keys are recorded."""

    store: str = Field(
        default="sqlite:///eventplatform-idempotency.db",
        description="memory://, sqlite:///PATH or postgresql://…",
    )
    ttl: float = Field(default=7 * 24 * 3600.0, gt=0, description="Seconds a key is kept.")
    lease: float = Field(default=30.0, gt=0, description="Seconds a claim blocks other members.")
    purge_interval: float = Field(
        default=300.0, gt=0, description="Seconds between background purges of expired keys."
    )


class ObservabilitySettings(_Section):
    """Health probes, Prometheus metrics and the log format of ``serve``, ``up`` and
    ``connectors run`` (see :mod:`eventplatform.observability`)."""

    host: str = Field(default="127.0.0.1", description="Interface the health server listens on.")
    port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of /health/live, /health/ready and /metrics; unset: no server, "
        "0: a free port.",
    )
    metrics: bool = Field(
        default=True, description="Serve /metrics (needs eventplatform[metrics]) on that port."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per log line."
    )
    otel: bool = Field(
        default=False,
        description="OpenTelemetry traces and metrics through the global tracer and meter "
        "providers (needs eventplatform[otel]; configure the SDK's exporters as usual).",
    )


class Settings(BaseSettings):
    """All eventplatform settings."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        toml_file="eventplatform.toml",
        pyproject_toml_table_header=("tool", "eventplatform"),
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    devkafka: DevKafkaSettings = DevKafkaSettings()
    registry: RegistrySettings = RegistrySettings()
    producer: ProducerSettings = ProducerSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    up: UpSettings = UpSettings()
    observability: ObservabilitySettings = ObservabilitySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls),
            PyprojectTomlConfigSettingsSource(settings_cls),
        )

    @model_validator(mode="before")
    @classmethod
    def _common_kafka_env(cls, data: Any) -> Any:
        # KAFKA_BOOTSTRAP_SERVERS is the de facto name used by Kafka tooling and images;
        # the prefixed variable wins when both are set.
        common = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        if not common or not isinstance(data, dict):
            return data
        kafka = data.get("kafka")
        if isinstance(kafka, BaseModel):
            kafka = kafka.model_dump()
        kafka = dict(kafka or {})
        if not kafka.get("bootstrap_servers"):
            kafka["bootstrap_servers"] = common
        return {**data, "kafka": kafka}


def _known_env_keys(model: type[BaseModel], prefix: str) -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name.upper()}"
        keys.add(key)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _known_env_keys(annotation, f"{key}__")
    return keys


def _check_environment() -> None:
    known = _known_env_keys(Settings, ENV_PREFIX)
    unknown = sorted(
        k
        for k in os.environ
        if k.upper().startswith(ENV_PREFIX)
        and k.upper() not in known
        and not k.upper().startswith(TEST_ENV_PREFIX)
    )
    if unknown:
        raise ConfigurationError(
            f"unknown setting {unknown[0]} in the environment; known settings: "
            + ", ".join(sorted(known))
        )


def _lookup(data: Any, path: Sequence[str | int]) -> bool:
    for part in path:
        if isinstance(data, Mapping) and str(part) in data:
            data = data[str(part)]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False
    return True


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except (OSError, ValueError):
        return {}


def _origin(loc: Sequence[str | int], overrides: Mapping[str, Any]) -> str | None:
    """Where the value at ``loc`` came from, in the order the sources are read.

    Environment names are case-insensitive (pydantic-settings' default); a variable may hold a
    whole section as JSON (``EVENTPLATFORM_KAFKA='{…}'``), hence the shorter prefixes.
    """
    if _lookup(overrides, loc):
        return "given as an argument"
    environment = {name.upper(): name for name in os.environ}
    for end in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(str(part).upper() for part in loc[:end])
        if name in environment:
            return f"environment variable {environment[name]}"
    toml_file = Path(str(Settings.model_config.get("toml_file"))).absolute()
    dotted = ".".join(str(part) for part in loc)
    if _lookup(_read_toml(toml_file), loc):
        return f"{toml_file}, key {dotted}"
    pyproject = Path.cwd() / "pyproject.toml"
    if _lookup(_read_toml(pyproject), ("tool", "eventplatform", *loc)):
        return f"{pyproject}, key tool.eventplatform.{dotted}"
    if tuple(loc) == ("kafka", "bootstrap_servers") and os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return "environment variable KAFKA_BOOTSTRAP_SERVERS"
    return None


def _malformed_file() -> str:
    """Which settings file does not parse, and why (pydantic-settings does not say)."""
    toml_file = Path(str(Settings.model_config.get("toml_file"))).absolute()
    for path in (toml_file, Path.cwd() / "pyproject.toml"):
        try:
            with path.open("rb") as file:
                tomllib.load(file)
        except OSError:
            continue
        except ValueError as exc:  # TOMLDecodeError, or a file that is not UTF-8
            return f"{path}: {exc}"
    return ""


def load_settings(**overrides: Any) -> Settings:
    """Load settings from arguments, environment and files.

    Raises:
        ConfigurationError: a key is unknown or a value is malformed; the message names the
            setting (``kafka.bootstrap_servers``) and where its value came from: the
            environment variable, or the file and key. Values are left out, since one may be
            a secret.
    """
    _check_environment()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = ".".join(str(p) for p in err["loc"])
            message = err["msg"]
            if err["type"] == "value_error" and "error" in err.get("ctx", {}):
                message = str(err["ctx"]["error"])  # without pydantic's "Value error, "
            origin = _origin(err["loc"], overrides)
            where = f" ({origin})" if origin else ""
            problems.append(f"setting {loc}{where}: {message}")
        # Not chained: the validation error holds the input values, and one may be a secret.
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None
    except ValueError as exc:  # a malformed toml file
        found = _malformed_file()
        message = f"invalid settings file {found}" if found else f"invalid settings file: {exc}"
        raise ConfigurationError(message) from exc
