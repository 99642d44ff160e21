"""Running ``serve`` as a process and reading its probes and metrics over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.docs.project import Background

REPO = Path(__file__).resolve().parents[3]
SERVICE = "tests.integration.observability.service:app"


def environment(bootstrap_servers: str, **extra: str) -> dict[str, str]:
    """The test's environment for a subprocess: this checkout, this broker, ``extra``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")},
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "PYTHONPATH": str(REPO),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        **extra,
    }


async def said(command: Background, text: str) -> bool:
    """Whether ``command`` printed ``text`` on stdout (failing when it exited)."""
    assert command.process.poll() is None, command.errors()
    return text in command.output()


async def get(url: str) -> tuple[int, str]:
    """``(status, body)`` of a GET; ``(0, reason)`` when nothing answers."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client,
            client.get(url) as response,
        ):
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 0, repr(exc)


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of ``url``'s ``/metrics``, parsed by the Prometheus client's parser."""
    status, text = await get(f"{url}/metrics")
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


async def stop(command: Background, within: float = 45.0) -> int | None:
    """SIGINT; a second one (cancel) if it does not stop in time; kill as the last resort."""
    for _ in range(2):
        if command.process.poll() is None:
            command.process.send_signal(signal.SIGINT)
        try:
            return await asyncio.to_thread(command.process.wait, within)
        except subprocess.TimeoutExpired:
            continue
    command.process.kill()
    await asyncio.to_thread(command.process.wait)
    return None
