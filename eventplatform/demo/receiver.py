"""The demo's webhook receiver: verifies Standard Webhooks signatures and shows what arrives.

It plays the subscriber at the other end of the demo's webhook egress, as a connector type of
its own (``demo-receiver``) so that ``eventplatform up`` starts it with the other connectors
from ``connectors/demo-receiver.toml``::

    type = "demo-receiver"

    [settings]
    port = 8090
    secrets = ["${DEMO_WEBHOOK_SECRET:-whsec_…}"]   # the egress endpoint's secret
    log_path = "var/received.jsonl"

``POST <path>`` verifies the signature with
:class:`~eventplatform.connectors.builtin.webhooks.SignatureVerifier` (``401`` when it does not
verify), logs the delivery on the ``eventplatform.demo.receiver`` logger, appends it to
``log_path`` as a JSON line and answers ``204``. A repeated ``webhook-id`` is answered
``204`` too but counted as a duplicate and not shown again: the deduplication a receiver is
expected to do. ``GET <path>`` lists the last 100 deliveries received, newest last.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web
from pydantic import Field, SecretStr, field_validator

from eventplatform.connectors.builtin.webhooks import H_WEBHOOK_ID, SignatureVerifier, decode_secret
from eventplatform.connectors.sdk.connector import Connector, ConnectorConfig
from eventplatform.errors import ConfigurationError, ConnectorError, InvalidSignature

__all__ = ["DemoReceiver", "DemoReceiverConfig"]

log = logging.getLogger("eventplatform.demo.receiver")

_SHOWN = 100


class DemoReceiverConfig(ConnectorConfig):
    """Settings of the demo receiver (the ``[settings]`` table)."""

    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8090, ge=0, le=65535, description="Port; 0 picks a free one.")
    path: str = Field(default="/webhooks", pattern=r"^/", description="Route deliveries go to.")
    secrets: list[SecretStr] = Field(min_length=1, description="Accepted whsec_… secrets.")
    timestamp_tolerance: float = Field(default=300.0, ge=0)
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    log_path: Path | None = Field(default=None, description="Append deliveries here (JSONL).")

    @field_validator("secrets")
    @classmethod
    def _check_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for secret in secrets:
            try:
                decode_secret(secret.get_secret_value())
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return secrets


class DemoReceiver(Connector[DemoReceiverConfig]):
    """A webhook receiver for the demo (see the module docstring)."""

    role: ClassVar[str] = "receiver"
    requires_topic: ClassVar[bool] = False
    requires_event_type: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config = self.config
        self._verifier = SignatureVerifier(
            [s.get_secret_value() for s in config.secrets], tolerance=config.timestamp_tolerance
        )
        self._seen: set[str] = set()
        self._recent: deque[dict[str, Any]] = deque(maxlen=_SHOWN)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._log_path = config.log_path.expanduser().absolute() if config.log_path else None

    @property
    def url(self) -> str:
        """The URL deliveries are received at.

        Raises:
            ConnectorError: the receiver is not listening.
        """
        if self._url is None:
            raise ConnectorError(f"receiver {self.name!r} is not listening")
        return self._url

    async def _open(self, stack: AsyncExitStack) -> None:
        """Nothing of Kafka: the receiver only listens."""

    async def on_start(self) -> None:
        """Listen on the configured host and port.

        Raises:
            ConnectorError: the address cannot be bound.
        """
        config = self.config
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        app = web.Application(client_max_size=config.max_body_bytes)
        app.router.add_post(config.path, self._receive)
        app.router.add_get(config.path, self._list)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, config.host, config.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConnectorError(
                f"receiver {self.name!r} cannot listen on {config.host}:{config.port}: {exc}"
            ) from exc
        self._runner = runner
        host, port = runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        self._url = f"http://{host}:{port}{config.path}"
        log.info("demo receiver %s listening on %s", self.name, self._url)

    async def on_stop(self) -> None:
        """Stop listening."""
        runner, self._runner = self._runner, None
        self._url = None
        if runner is not None:
            await runner.cleanup()

    async def _run(self) -> None:
        await self._stopping.wait()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verified = self._verifier.verify(request.headers, body)
        except InvalidSignature as exc:
            self.stats.failed(f"signature check failed: {exc}")
            log.warning("demo receiver %s refused a delivery: %s", self.name, exc)
            return web.json_response({"error": f"signature check failed: {exc}"}, status=401)
        try:
            payload = json.loads(body)
        except ValueError:
            self.stats.failed("a delivery that is not JSON")
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if verified.id in self._seen:
            self.stats.count("duplicates")
            log.info("demo receiver %s: duplicate %s ignored", self.name, verified.id)
            return web.Response(status=204)
        self._seen.add(verified.id)
        received = {
            "webhook_id": request.headers[H_WEBHOOK_ID],
            "received_at": time.time(),
            "payload": payload,
        }
        self._recent.append(received)
        self.stats.published()
        kind = payload.get("type", "?") if isinstance(payload, dict) else "?"
        data = payload.get("data") if isinstance(payload, dict) else payload
        log.info(
            "demo receiver %s got %s (webhook-id %s): %s",
            self.name,
            kind,
            verified.id,
            json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        )
        if self._log_path is not None:
            line = json.dumps(received, ensure_ascii=False, separators=(",", ":")) + "\n"
            await asyncio.to_thread(_append, self._log_path, line.encode())
        return web.Response(status=204)

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response(list(self._recent))


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as file:
        file.write(data)
