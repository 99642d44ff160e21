"""What ``eventplatform up`` keeps in its deployment folder, and how other commands find it.

A deployment is the folder holding ``connectors/`` and ``schemas/``; ``up`` keeps its runtime
state under ``var/`` there:

=====================  ===================================================================
``var/kafka/``         the development broker's storage and cluster id
                       (:class:`~eventplatform.devkafka.local.ClusterDir`): topics, offsets,
                       the schema registry's log and transactional state survive a restart
``var/up.json``        where the running ``up`` listens (:class:`UpState`): written once it
                       is ready, removed when it exits; ignored when its pid is dead
``var/*.db``           the connectors' SQLite idempotency stores (as their files name them)
=====================  ===================================================================

``up --fresh`` removes the broker's storage, the state file and the SQLite stores the
connector files place under ``var/`` (their keys would name events of the old cluster), and
keeps everything else there (the demo's ``*.jsonl`` outputs).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from eventplatform.connectors.runtime.instances import ConnectorSpec
from eventplatform.devkafka.local import ensure_port_free

__all__ = [
    "STATE_FILE",
    "UpState",
    "check_ports",
    "forget_fresh",
    "kafka_dir",
    "listening_ports",
    "read_state",
    "remove_state",
    "write_state",
]

#: The state file, relative to the deployment folder.
STATE_FILE = Path("var") / "up.json"


def kafka_dir(root: Path) -> Path:
    """Where the development broker of the deployment at ``root`` keeps its storage."""
    return root / "var" / "kafka"


@dataclass(frozen=True, slots=True)
class UpState:
    """Where a running ``eventplatform up`` listens.

    Attributes:
        pid: the ``up`` process.
        bootstrap_servers: its Kafka cluster.
        registry_url: its schema registry's REST API.
        ingress_urls: ``http://host:port`` of each webhook ingress server.
        connector_urls: the URL of each connector that listens, by name.
        security_protocol, sasl_mechanism, sasl_username, ssl_cafile: how a client reaches a
            secured cluster (``up --security sasl_ssl``), as the admin.
        sasl_password_file: the file (mode 0600) holding that user's password. The state
            file names it and never holds the password itself: ``var/up.json`` is readable
            by anyone who may list the deployment, and is no place for a secret.
    """

    pid: int
    bootstrap_servers: str
    registry_url: str
    ingress_urls: tuple[str, ...] = ()
    connector_urls: dict[str, str] = field(default_factory=dict)
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    ssl_cafile: str | None = None
    sasl_password_file: str | None = None

    def kafka_update(self) -> dict[str, Any]:
        """The ``kafka`` settings that reach this cluster (``model_copy(update=…)``)."""
        update: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism is not None:
            update |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_username": self.sasl_username,
                "sasl_password": None,
                "sasl_password_file": Path(self.sasl_password_file)
                if self.sasl_password_file
                else None,
            }
        if self.ssl_cafile is not None:
            update["ssl_cafile"] = Path(self.ssl_cafile)
        return update

    def to_json(self) -> str:
        """The state as a JSON document."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> UpState:
        """Parse :meth:`to_json`'s output.

        Raises:
            ValueError: not a state document.
        """
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            return cls(
                pid=int(data["pid"]),
                bootstrap_servers=str(data["bootstrap_servers"]),
                registry_url=str(data["registry_url"]),
                ingress_urls=tuple(str(url) for url in data.get("ingress_urls", ())),
                connector_urls={str(k): str(v) for k, v in data.get("connector_urls", {}).items()},
                security_protocol=str(data.get("security_protocol") or "PLAINTEXT"),
                sasl_mechanism=_optional(data.get("sasl_mechanism")),
                sasl_username=_optional(data.get("sasl_username")),
                ssl_cafile=_optional(data.get("ssl_cafile")),
                sasl_password_file=_optional(data.get("sasl_password_file")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"missing or malformed field: {exc}") from exc


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def write_state(root: Path, state: UpState) -> Path:
    """Write ``state`` to ``root/var/up.json`` (atomically: a reader never sees half of it)."""
    path = root / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    staging.write_text(state.to_json())
    staging.replace(path)
    return path


def read_state(root: Path) -> UpState | None:
    """The state of the ``up`` running in ``root``; None when none runs there.

    A missing or unreadable file, or one whose process is gone (``up`` was killed), counts as
    none.
    """
    try:
        state = UpState.from_json((root / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if _alive(state.pid) else None


def remove_state(root: Path, pid: int) -> None:
    """Remove the state file if it is still the one process ``pid`` wrote."""
    path = root / STATE_FILE
    try:
        if UpState.from_json(path.read_text()).pid == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def _sqlite_files(specs: Iterable[ConnectorSpec], root: Path) -> list[Path]:
    """The SQLite stores the connector files name (``store``, ``idempotency_store``) in var/."""
    var = (root / "var").resolve()
    found: list[Path] = []
    for spec in specs:
        for attribute in ("store", "idempotency_store"):
            value = getattr(spec.config, attribute, None)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if not isinstance(value, str) or not value.startswith("sqlite:///"):
                continue
            path = Path(value.removeprefix("sqlite:///"))
            path = (path if path.is_absolute() else root / path).resolve()
            if path.is_relative_to(var):
                found.append(path)
    return found


def forget_fresh(root: Path, specs: Sequence[ConnectorSpec]) -> list[Path]:
    """``up --fresh``: remove the broker's storage, the state file and the connectors' SQLite
    stores under ``root/var``.

    Returns:
        What was removed.
    """
    removed: list[Path] = []
    storage = kafka_dir(root)
    if storage.exists():
        shutil.rmtree(storage)
        removed.append(storage)
    for db in [root / STATE_FILE, *_sqlite_files(specs, root)]:
        for path in (db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))):
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed


@dataclass(frozen=True, slots=True)
class Listener:
    """A port the deployment will listen on, and how a user changes it."""

    host: str
    port: int
    what: str
    setting: str


def listening_ports(specs: Sequence[ConnectorSpec]) -> list[Listener]:
    """The fixed ports the connector files ask for (``host`` and ``port`` in ``[settings]``)."""
    listeners: list[Listener] = []
    seen: set[tuple[str, int]] = set()
    for spec in specs:
        host, port = getattr(spec.config, "host", None), getattr(spec.config, "port", None)
        if not isinstance(host, str) or not isinstance(port, int) or not port:
            continue
        if (host, port) in seen:  # ingress routes share one server per address
            continue
        seen.add((host, port))
        where = f"{spec.path}" if spec.path is not None else f"connector {spec.name!r}"
        listeners.append(
            Listener(host, port, f"{spec.type_name} {spec.name}", f"settings.port in {where}")
        )
    return listeners


def check_ports(listeners: Iterable[Listener]) -> None:
    """Fail before anything starts when one of ``listeners`` is taken.

    Raises:
        PortInUse: naming the port, what wanted it and the setting that changes it.
    """
    for listener in listeners:
        ensure_port_free(
            listener.port, host=listener.host, what=listener.what, setting=listener.setting
        )
