"""Egress benchmark: webhook deliveries/s to a local receiver, against a raw aiohttp client.

A receiver process (this module run with ``--receiver``) answers ``204`` to every ``POST``
and notes when each arrived. :data:`EVENTS` ``OrderPlaced`` events wait in a real topic, and
:data:`ENDPOINTS` endpoints of the receiver subscribe to them, so each round makes
``EVENTS × ENDPOINTS`` deliveries:

- **ours**: a :class:`~eventplatform.connectors.builtin.egress.WebhookEgress` with a fresh
  consumer group reads the topic, decodes each record with its writer schema, renders the
  Standard Webhooks body, signs it (HMAC-SHA256), posts it, and records every attempt in the
  deliveries topic; each endpoint gets its events in order, one at a time (the egress's
  per-endpoint ordering);
- **reference**: a raw aiohttp ``ClientSession`` with the same connection limit posts the same
  bodies, one sequential poster per endpoint (the same ordering, so the same concurrency),
  with nothing read from Kafka, no signature and nothing recorded.

The rate of a round is deliveries over the time between the receiver's first and last arrival,
so the consumer group's join (seconds, before the first delivery) is not counted. Sides
alternate for :data:`ROUNDS` rounds; figures are medians. Goal (issue 5): ours ≥ 0.7×.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.broker import create_topic, kafka, unique
from benchmarks.harness import Comparison, Result, print_results
from benchmarks.workload import orders
from eventplatform import heap
from eventplatform.cloudevents import EventMetadata
from eventplatform.connectors.builtin.egress.connector import WebhookEgress
from eventplatform.connectors.builtin.egress.deliveries import json_value, webhook_body
from eventplatform.demo.events import OrderPlaced
from eventplatform.producer import EventProducer
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.settings import Settings, load_settings

__all__ = ["main", "run"]

EVENTS = 4_000
ENDPOINTS = 4
ROUNDS = 5
PARTITIONS = 3
MAX_CONNECTIONS = 100
#: Seconds a round may take.
PATIENCE = 120.0
SECRET = "whsec_" + base64.b64encode(b"benchmark secret, 32 bytes long!").decode()


class Receiver:
    """The receiver process: start, reset its counts, read them."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.base = ""
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Receiver:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.egress",
            "--receiver",
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        port = int((await self.process.stdout.readline()).decode().strip())
        self.base = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            await self.process.wait()

    async def reset(self) -> None:
        """Forget the arrivals so far."""
        assert self._session is not None
        async with self._session.post(f"{self.base}/reset") as answer:
            answer.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        """``{"count", "first", "last"}`` of the arrivals since the last reset."""
        assert self._session is not None
        async with self._session.get(f"{self.base}/stats") as answer:
            figures: dict[str, Any] = await answer.json()
            return figures

    async def wait_for(self, count: int) -> dict[str, Any]:
        """The stats once ``count`` deliveries arrived.

        Raises:
            TimeoutError: they did not arrive within :data:`PATIENCE` seconds.
        """
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            figures = await self.stats()
            if figures["count"] >= count:
                return figures
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{count} deliveries did not arrive within {PATIENCE:.0f}s")


def _rate(figures: dict[str, Any]) -> float:
    # count - 1 intervals between the first and the last arrival.
    span = float(figures["last"]) - float(figures["first"])
    return (int(figures["count"]) - 1) / max(span, 1e-9)


async def _ours(
    settings: Settings, registry: MemoryRegistry, topic: str, receiver: Receiver
) -> float:
    name = unique("egress")
    endpoints = [
        {"name": f"e{n}", "url": f"{receiver.base}/e/{n}", "secret": SECRET, "event_types": ["*"]}
        for n in range(ENDPOINTS)
    ]
    await receiver.reset()
    egress = WebhookEgress(
        name=name,
        topic=topic,
        config={
            "endpoints": endpoints,
            "allow_private_addresses": True,
            "max_connections": MAX_CONNECTIONS,
            "state_topic": unique("egress-state"),
        },
        settings=settings,
        registry=registry,
    )
    task = asyncio.create_task(egress.run())
    try:
        figures = await receiver.wait_for(EVENTS * ENDPOINTS)
    finally:
        egress.stop()
        await task
    return _rate(figures)


async def _reference(bodies: list[bytes], receiver: Receiver) -> float:
    await receiver.reset()
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def poster(n: int) -> None:
            url = f"{receiver.base}/e/{n}"
            for body in bodies:
                async with session.post(url, data=body, headers=headers) as answer:
                    await answer.content.read(4096)
                    if not 200 <= answer.status < 300:
                        raise RuntimeError(f"the receiver answered {answer.status}")

        await asyncio.gather(*(poster(n) for n in range(ENDPOINTS)))
    return _rate(await receiver.wait_for(EVENTS * ENDPOINTS))


async def run() -> None:
    """Measure both sides and print the comparison."""
    with kafka() as servers:
        topic = await create_topic(servers, unique("egress-in"), PARTITIONS)
        settings = load_settings(
            kafka={"bootstrap_servers": servers},
            producer={"source": "/benchmarks"},
            consumer={"auto_offset_reset": "earliest"},
        )
        events = orders(EVENTS)
        bodies = [
            webhook_body(
                EventMetadata.new(source="/benchmarks", type=OrderPlaced.__avro_name__),
                json_value(event.model_dump()),
            )
            for event in events
        ]
        ours, reference = (
            Result("egress", unit="del/s", scale=1),
            Result("raw", unit="del/s", scale=1),
        )
        # This process's CPU per delivery, the consumer group's join included for ours.
        cpu: dict[str, list[float]] = {"ours": [], "reference": []}
        async with MemoryRegistry() as registry, Receiver() as receiver:
            async with EventProducer(settings=settings, registry=registry) as producer:
                await producer.publish_batch(events, topic=topic)
            # What `eventplatform up` and `connectors run` do once started (both sides
            # share this process, so both get it).
            heap.settle()
            for _ in range(ROUNDS):
                for side, result, measure in (
                    ("reference", reference, lambda: _reference(bodies, receiver)),
                    ("ours", ours, lambda: _ours(settings, registry, topic, receiver)),
                ):
                    started = time.process_time()
                    result.rounds.append(await measure())
                    cpu[side].append((time.process_time() - started) / (EVENTS * ENDPOINTS))
    print_results(
        "Webhook egress: deliveries/s to a local receiver (higher is better)",
        [Comparison("topic → signed POST → recorded", ours, reference, 0.7, higher_is_better=True)],
        [
            f"{EVENTS:,} events × {ENDPOINTS} endpoints per round, each endpoint in order "
            f"(one delivery in flight per endpoint), pool of {MAX_CONNECTIONS} connections, "
            f"receiver in a second process; {ROUNDS} rounds per side",
            f"process CPU per delivery: egress {statistics.median(cpu['ours']) * 1e6:.0f} µs "
            f"(from the connector's start, its consumer group join included), raw client "
            f"{statistics.median(cpu['reference']) * 1e6:.0f} µs",
        ],
    )


def main() -> None:
    """Entry point of ``python -m benchmarks egress``."""
    asyncio.run(run())


# -- the receiver process ----------------------------------------------------------------------


async def _receive() -> None:
    arrivals: list[float] = []

    async def deliver(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append(time.perf_counter())
        return web.Response(status=204)

    async def reset(request: web.Request) -> web.Response:
        arrivals.clear()
        return web.Response(status=204)

    async def stats(request: web.Request) -> web.Response:
        first, last = (arrivals[0], arrivals[-1]) if arrivals else (0.0, 0.0)
        return web.json_response({"count": len(arrivals), "first": first, "last": last})

    app = web.Application()
    app.router.add_post("/e/{n}", deliver)
    app.router.add_post("/reset", reset)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    print(port, flush=True)
    # Serve until the parent closes our stdin.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def _receiver_main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--receiver", action="store_true", required=True)
    parser.parse_args()
    asyncio.run(_receive())


if __name__ == "__main__":
    _receiver_main()
