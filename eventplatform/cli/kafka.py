"""``eventplatform kafka …``: a development broker in the foreground."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer

from eventplatform.cli._common import err_console, fail_on_errors
from eventplatform.devkafka import Provider, provision
from eventplatform.settings import load_settings

__all__ = ["app"]

app = typer.Typer(help="Run a development Apache Kafka broker.", no_args_is_help=True)


@app.command("start")
def start() -> None:
    """Start a broker (Docker or Java + Maven) and run it until Ctrl-C or SIGTERM.

    Prints ``bootstrap=HOST:PORT`` on its own line once the broker answers.
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with fail_on_errors():
            settings = load_settings()
            with provision(settings, progress=lambda m: err_console.print(f"[dim]{m}[/]")) as b:
                print(f"bootstrap={b.bootstrap_servers}", flush=True)
                if b.provider is Provider.EXTERNAL:
                    err_console.print("an external cluster is configured; nothing to run")
                    return
                err_console.print(f"Kafka ({b.provider}) running; Ctrl-C stops it")
                if b.log_path:
                    err_console.print(f"[dim]broker log: {b.log_path}[/]")
                stop.wait()
                err_console.print("stopping Kafka")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
