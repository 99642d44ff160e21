"""``eventplatform registry …``: the Kafka-log schema registry over Confluent's REST API."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from eventplatform.cli import _clients
from eventplatform.cli._common import err_console, fail_on_errors
from eventplatform.errors import ConfigurationError
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.registry.rest_server import serve, server_url
from eventplatform.registry.tls import server_context
from eventplatform.settings import Settings, load_settings

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Run the schema registry (Confluent's REST API over the Kafka-log backend)."""


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="Port to listen on; 8081 is Confluent's; 0 picks one."),
    ] = 8081,
    topic: Annotated[
        str | None,
        typer.Option(help="The registry's log topic [default: setting registry.topic]."),
    ] = None,
) -> None:
    """Serve the Kafka-log registry over Confluent's Schema Registry REST API until Ctrl-C.

    The registry is a topic of the configured cluster (EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS),
    so any number of servers and eventplatform clients share it. When the settings
    registry.username and registry.password are set (EVENTPLATFORM_REGISTRY__USERNAME,
    EVENTPLATFORM_REGISTRY__PASSWORD), every request needs them as HTTP basic auth: the same
    settings a client of this server uses. With registry.server_certfile (and
    registry.server_keyfile) set it serves HTTPS; clients trust its CA with registry.ssl_cafile.
    The Kafka connection takes kafka.* settings, credentials included. Prints
    ``url=http(s)://HOST:PORT`` on its own line once it listens.
    """
    with fail_on_errors():
        settings = load_settings()
        if settings.kafka.bootstrap_servers is None:
            # A broker provisioned just for this process would take every schema with it when
            # it stops, so the registry only runs against a cluster that outlives it.
            raise ConfigurationError(
                "`registry serve` needs a Kafka cluster that outlives it: set "
                "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS (for development, start one with "
                "`eventplatform kafka start`)"
            )
        _clients.run(_serve(settings, topic=topic or settings.registry.topic, host=host, port=port))


async def _serve(settings: Settings, *, topic: str, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    auth = settings.registry
    tls = server_context(auth)
    try:
        async with KafkaLogRegistry(topic=topic, settings=settings) as registry:
            runner = await serve(
                registry,
                host,
                port,
                username=auth.username,
                password=auth.password_value(),
                ssl_context=tls,
            )
            try:
                url = server_url(runner)
                print(f"url={url}", flush=True)
                err_console.print(
                    f"schema registry on {url} (log topic {topic!r} at "
                    f"{registry.bootstrap_servers}); Ctrl-C stops it"
                )
                await stop.wait()
                err_console.print("stopping the schema registry")
            finally:
                await runner.cleanup()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
