"""``eventplatform kafka …``: a development broker in the foreground."""

from __future__ import annotations

import signal
import threading
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from eventplatform.cli._common import err_console, fail_on_errors
from eventplatform.devkafka import Provider, provision
from eventplatform.settings import load_settings

__all__ = ["app"]


class Security(StrEnum):
    """``devkafka.security`` choices."""

    PLAINTEXT = "plaintext"
    SASL_SSL = "sasl_ssl"


app = typer.Typer(help="Run a development Apache Kafka broker.", no_args_is_help=True)


@app.command("start")
def start(
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Broker port [default: devkafka.port, else a free one]."
        ),
    ] = None,
    controller_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="KRaft controller port [default: devkafka.controller_port, else a free one].",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Keep the broker's storage here across runs [default: devkafka.data_dir, "
            "else a temporary folder].",
        ),
    ] = None,
    brokers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=9,
            help="Start a cluster of this many KRaft nodes; node N listens on PORT+2(N-1) "
            "[default: devkafka.brokers, 1].",
        ),
    ] = None,
    security: Annotated[
        Security | None,
        typer.Option(
            help="plaintext, or sasl_ssl: TLS with a throwaway CA, SCRAM-SHA-512 users and "
            "ACLs [default: devkafka.security].",
        ),
    ] = None,
) -> None:
    """Start a broker (Docker or Java + Maven) and run it until Ctrl-C or SIGTERM.

    Prints ``bootstrap=HOST:PORT[,…]`` on its own line once the brokers answer; with
    --security sasl_ssl also ``security_protocol=``, ``sasl_mechanism=``, ``username=``,
    ``ssl_cafile=`` and ``password_file=`` (the password itself is never printed). With --data-dir
    the first start formats the folder and later ones reuse it: topics and offsets survive.
    --port, --controller-port and --data-dir apply to the Java + Maven path.
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with fail_on_errors():
            settings = load_settings()
            update = {
                "port": port,
                "controller_port": controller_port,
                "data_dir": data_dir,
                "brokers": brokers,
                "security": security.value if security is not None else None,
            }
            devkafka = settings.devkafka.model_copy(
                update={k: v for k, v in update.items() if v is not None}
            )
            settings = settings.model_copy(update={"devkafka": devkafka})
            with provision(settings, progress=lambda m: err_console.print(f"[dim]{m}[/]")) as b:
                print(f"bootstrap={b.bootstrap_servers}", flush=True)
                if b.settings is not None:
                    kafka = b.settings
                    print(
                        f"security_protocol={kafka.security_protocol}\n"
                        f"sasl_mechanism={kafka.sasl_mechanism}\nusername={kafka.sasl_username}\n"
                        f"ssl_cafile={kafka.ssl_cafile}\npassword_file={b.password_file}",
                        flush=True,
                    )
                if b.provider is Provider.EXTERNAL:
                    err_console.print("an external cluster is configured; nothing to run")
                    return
                if b.provider is Provider.DOCKER and any(v is not None for v in update.values()):
                    err_console.print("[yellow]--port/--data-dir apply to Java + Maven only[/]")
                if b.brokers > 1:
                    err_console.print(f"a cluster of {b.brokers} KRaft nodes (static quorum)")
                err_console.print(f"Kafka ({b.provider}) running; Ctrl-C stops it")
                if b.log_path:
                    err_console.print(f"[dim]broker log: {b.log_path}[/]")
                stop.wait()
                err_console.print("stopping Kafka")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
