"""The options every long-running command shares for its probes, metrics and log format
(``serve``, ``up``, ``connectors run``): ``--health-port`` and ``--log-format``, over the
``observability`` settings."""

from __future__ import annotations

from typing import Annotated

import typer

from eventplatform.errors import ConfigurationError
from eventplatform.settings import ObservabilitySettings, load_settings

__all__ = ["HealthPortOption", "LogFormatOption", "observability_settings"]

HealthPortOption = Annotated[
    int | None,
    typer.Option(
        "--health-port",
        min=0,
        max=65535,
        help="Serve /health/live, /health/ready and /metrics on this port (0: a free one) "
        "[default: observability.port; unset: no server].",
    ),
]
LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="text, or json: one JSON object per line [default: observability.log_format].",
    ),
]


def observability_settings(
    port: int | None, log_format: str | None, *, base: ObservabilitySettings | None = None
) -> ObservabilitySettings:
    """The ``observability`` settings (``base``, else loaded) with the command's
    ``--health-port`` and ``--log-format`` applied.

    Raises:
        ConfigurationError: the settings are invalid, or ``log_format`` is not text or json.
    """
    current = base if base is not None else load_settings().observability
    update: dict[str, object] = {}
    if port is not None:
        update["port"] = port
    if log_format is not None:
        if log_format not in ("text", "json"):
            raise ConfigurationError(f"--log-format must be text or json, not {log_format!r}")
        update["log_format"] = log_format
    return current.model_copy(update=update)
