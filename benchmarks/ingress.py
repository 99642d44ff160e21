"""Ingress benchmark: accepted webhook events/s at concurrency 64, against a bare aiohttp handler.

Two servers run in this process, on the same event loop: the webhook ingress (API key, JSON
parsed and validated against ``OrderPlaced``'s schema, Avro-encoded, published to a real
broker with ``acks=all``, answered ``202`` only once Kafka acknowledged the event) and a bare
aiohttp handler that reads the body and answers ``202`` without validating or publishing. A
second process (this module run with ``--client``) posts the same bodies to each in turn,
over :data:`CONCURRENCY` keep-alive connections, each connection with one request in flight:
a second process is fairer than a client sharing the servers' event loop, and ``wrk`` is
not assumed to be installed. Sides alternate for :data:`ROUNDS` rounds of :data:`SECONDS`
seconds each (after a warm-up), and the figures are medians of the rounds: accepted
events/s, and the p50 and p99 latency of a request.

The server process is tuned as ``eventplatform up`` tunes its own once started
(:func:`eventplatform.heap.settle`: start-up objects frozen, a young-generation threshold of
10,000); both servers share the process and so the tuning.

Goal (issue 5, "Performance"): ours ≥ 0.5× of the bare handler's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from benchmarks.broker import create_topic, kafka, unique
from benchmarks.harness import Comparison, Result, print_results
from benchmarks.workload import orders
from eventplatform import heap
from eventplatform.connectors.builtin.ingress.connector import WebhookIngress
from eventplatform.connectors.sdk.status import ConnectorState
from eventplatform.demo.events import OrderPlaced
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.settings import load_settings

__all__ = ["main", "run"]

CONCURRENCY = 64
ROUNDS = 3
SECONDS = 3.0
WARMUP = 0.5
#: A round's length; the client counts requests over the last SECONDS of it only.
ROUND_TIME = WARMUP + SECONDS
PARTITIONS = 3
#: Distinct request bodies, posted round and round.
BODIES = 1_000
API_KEY = "bench-key-1f0c"


async def _bare(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202)


async def _serve_bare() -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/hooks/bench", _bare)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    return runner, f"http://127.0.0.1:{port}/hooks/bench"


async def _drive(url: str, bodies: Path) -> dict[str, Any]:
    """Run one round's client process against ``url``; its figures."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.ingress",
        "--client",
        url,
        str(bodies),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the client process failed (exit {process.returncode})")
    figures: dict[str, Any] = json.loads(out)
    return figures


async def _durable(servers: str, topic: str) -> int:
    """Records in ``topic`` (the sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()
    return sum(ends.values())


def _write_bodies(directory: str) -> Path:
    bodies = Path(directory, "bodies.json")
    bodies.write_text(json.dumps([e.model_dump_json() for e in orders(BODIES)]))
    return bodies


async def run() -> None:
    """Measure both sides and print the comparison."""
    with kafka() as servers, tempfile.TemporaryDirectory() as scratch:
        bodies = _write_bodies(scratch)
        topic = await create_topic(servers, unique("ingress"), PARTITIONS)
        settings = load_settings(
            kafka={"bootstrap_servers": servers}, producer={"source": "/benchmarks"}
        )
        async with MemoryRegistry() as registry:
            ingress = WebhookIngress(
                name="bench",
                topic=topic,
                event_type=OrderPlaced,
                config={
                    "port": 0,
                    "api_keys": [API_KEY],
                    "key_field": "customer_id",
                    "max_pending": 10_000,
                },
                settings=settings,
                registry=registry,
            )
            task = asyncio.create_task(ingress.run())
            while ingress.state is not ConnectorState.RUNNING:
                if task.done():
                    await task
                await asyncio.sleep(0.02)
            runner, bare_url = await _serve_bare()
            # What `eventplatform up` and `connectors run` do once started (both sides
            # share this process, so both get it).
            heap.settle()
            ours, bare = (
                Result("ingress", unit="ev/s", scale=1),
                Result("bare", unit="ev/s", scale=1),
            )
            latency: dict[str, list[tuple[float, float]]] = {"ours": [], "bare": []}
            # The servers' process CPU per accepted request: whether a side is CPU-bound.
            cpu: dict[str, list[float]] = {"ours": [], "bare": []}
            accepted = 0
            try:
                for _ in range(ROUNDS):
                    for name, url, result in (
                        ("bare", bare_url, bare),
                        ("ours", ingress.url, ours),
                    ):
                        cpu_start = time.process_time()
                        figures = await _drive(url, bodies)
                        busy = time.process_time() - cpu_start
                        cpu[name].append(busy / max(1, figures["total"]) * (SECONDS / ROUND_TIME))
                        if figures["refused"]:
                            raise RuntimeError(f"{name}: {figures['refused']} requests not 202")
                        result.rounds.append(figures["rate"])
                        latency[name].append((figures["p50"], figures["p99"]))
                        if name == "ours":
                            accepted += figures["total"]
            finally:
                await runner.cleanup()
                ingress.stop()
                await task
            durable = await _durable(servers, topic)
    if durable < accepted:
        raise RuntimeError(f"{accepted} events were answered 202 but only {durable} are in Kafka")

    def ms(name: str, column: int) -> str:
        return f"{statistics.median(r[column] for r in latency[name]) * 1e3:.1f} ms"

    print_results(
        f"Webhook ingress: accepted events/s at concurrency {CONCURRENCY} (higher is better)",
        [
            Comparison(
                "POST → validated, published, acked → 202", ours, bare, 0.5, higher_is_better=True
            )
        ],
        [
            f"latency p50/p99: ingress {ms('ours', 0)} / {ms('ours', 1)}, "
            f"bare handler {ms('bare', 0)} / {ms('bare', 1)}",
            f"server process CPU per accepted request: ingress "
            f"{statistics.median(cpu['ours']) * 1e6:.0f} µs, "
            f"bare handler {statistics.median(cpu['bare']) * 1e6:.0f} µs",
            f"{accepted:,} events answered 202 in total, {durable:,} records in the topic; "
            f"{PARTITIONS} partitions, acks=all, client in a second process, "
            f"{ROUNDS} rounds of {SECONDS:.0f} s per side",
        ],
    )


def main() -> None:
    """Entry point of ``python -m benchmarks ingress``."""
    asyncio.run(run())


# -- the client process ------------------------------------------------------------------------


async def _client(url: str, bodies: list[bytes]) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "X-API-Key": API_KEY}
    latencies: list[float] = []
    refused = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from, stop = start + WARMUP, start + WARMUP + SECONDS

    async def worker(session: aiohttp.ClientSession, first: int) -> None:
        nonlocal refused
        n = first
        while True:
            sent = time.perf_counter()
            began = loop.time()
            if began >= stop:
                return
            async with session.post(url, data=bodies[n % len(bodies)], headers=headers) as answer:
                await answer.read()
                status = answer.status
            if began >= measure_from:
                if status == 202:
                    latencies.append(time.perf_counter() - sent)
                else:
                    refused += 1
            n += CONCURRENCY

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, i) for i in range(CONCURRENCY)))
    latencies.sort()
    count = len(latencies)
    return {
        "rate": count / SECONDS,
        "total": count,
        "refused": refused,
        "p50": latencies[count // 2] if count else 0.0,
        "p99": latencies[min(count - 1, int(count * 0.99))] if count else 0.0,
    }


def _client_main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", required=True)
    parser.add_argument("bodies")
    args = parser.parse_args()
    bodies = [b.encode() for b in json.loads(Path(args.bodies).read_text())]
    print(json.dumps(asyncio.run(_client(args.client, bodies))))


if __name__ == "__main__":
    _client_main()
