"""The client configuration ``apps add`` prints: eventplatform env lines, librdkafka, Java.

It holds the app's password in clear: that is its purpose, printed once to stdout for the
operator to hand over. Nothing here logs it; the values are rendered into strings only.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from eventplatform.apps.admin import AppCredentials
from eventplatform.settings import KafkaSettings, RegistrySettings

__all__ = ["ClientConfig"]

# The app authenticates with SASL over whatever transport the admin uses.
_SASL_PROTOCOL = {
    "PLAINTEXT": "SASL_PLAINTEXT",
    "SASL_PLAINTEXT": "SASL_PLAINTEXT",
    "SSL": "SASL_SSL",
    "SASL_SSL": "SASL_SSL",
}


def _env_value(value: str) -> str:
    """Bare when it needs no quoting (an env file takes it as is), else shell-quoted."""
    quoted = shlex.quote(value)
    return value if quoted == value else quoted


def _jaas(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How an app reaches the cluster with its new credentials."""

    credentials: AppCredentials
    kafka: KafkaSettings
    registry: RegistrySettings

    @property
    def security_protocol(self) -> str:
        """SASL over the admin's transport (TLS stays TLS)."""
        return _SASL_PROTOCOL[self.kafka.security_protocol]

    def _common(self) -> dict[str, str | None]:
        grants = self.credentials.grants
        return {
            "servers": self.kafka.bootstrap_servers or "",
            "protocol": self.security_protocol,
            "mechanism": self.credentials.mechanism,
            "user": grants.name,
            "password": self.credentials.password.get_secret_value(),
            "cafile": str(self.kafka.ssl_cafile) if self.kafka.ssl_cafile else None,
            "group": grants.group_id,
        }

    def env(self) -> dict[str, str]:
        """eventplatform settings as environment variables."""
        c = self._common()
        env = {
            "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": c["servers"],
            "EVENTPLATFORM_KAFKA__SECURITY_PROTOCOL": c["protocol"],
            "EVENTPLATFORM_KAFKA__SASL_MECHANISM": c["mechanism"],
            "EVENTPLATFORM_KAFKA__SASL_USERNAME": c["user"],
            "EVENTPLATFORM_KAFKA__SASL_PASSWORD": c["password"],
        }
        if c["cafile"]:
            env["EVENTPLATFORM_KAFKA__SSL_CAFILE"] = c["cafile"]
        if not self.kafka.ssl_check_hostname:
            env["EVENTPLATFORM_KAFKA__SSL_CHECK_HOSTNAME"] = "false"
        env["EVENTPLATFORM_CONSUMER__GROUP_ID"] = c["group"]
        grants = self.credentials.grants
        if grants.registry_topic is not None and not self.registry.url:
            env["EVENTPLATFORM_REGISTRY__TOPIC"] = grants.registry_topic
        elif self.registry.url:
            env["EVENTPLATFORM_REGISTRY__URL"] = self.registry.url
        # The app may not write the registry: its schemas are registered by the operator.
        env["EVENTPLATFORM_REGISTRY__AUTO_REGISTER"] = "false"
        return {k: v for k, v in env.items() if v is not None}

    def librdkafka(self) -> dict[str, str]:
        """librdkafka (confluent-kafka-python, Go, .NET, …) properties."""
        c = self._common()
        props = {
            "bootstrap.servers": c["servers"],
            "security.protocol": c["protocol"],
            "sasl.mechanisms": c["mechanism"],
            "sasl.username": c["user"],
            "sasl.password": c["password"],
        }
        if c["cafile"]:
            props["ssl.ca.location"] = c["cafile"]
        props["group.id"] = c["group"]
        return {k: v for k, v in props.items() if v is not None}

    def java(self) -> dict[str, str]:
        """Java client properties (``sasl.jaas.config`` with the SCRAM login module)."""
        c = self._common()
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{_jaas(str(c["user"]))}" password="{_jaas(str(c["password"]))}";'
        )
        props = {
            "bootstrap.servers": c["servers"],
            "security.protocol": c["protocol"],
            "sasl.mechanism": c["mechanism"],
            "sasl.jaas.config": jaas,
        }
        if c["cafile"]:
            props |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": c["cafile"]}
        props["group.id"] = c["group"]
        return {k: v for k, v in props.items() if v is not None}

    def render(self) -> str:
        """The three blocks, as ``apps add`` prints them."""

        def block(title: str, pairs: dict[str, str], *, env: bool = False) -> str:
            lines = [f"# {title}"]
            for key, value in pairs.items():
                lines.append(f"{key}={_env_value(value) if env else value}")
            return "\n".join(lines)

        name = self.credentials.grants.name
        return (
            "\n\n".join(
                [
                    f"# App {name!r}: its password is shown only here; store it now.",
                    block("eventplatform (environment)", self.env(), env=True),
                    block("librdkafka", self.librdkafka()),
                    block("Java client", self.java()),
                ]
            )
            + "\n"
        )

    def __repr__(self) -> str:
        return f"<ClientConfig app={self.credentials.grants.name!r}>"
