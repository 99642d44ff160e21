"""The handler against a real broker: eventplatform's pytest plugin provides it (the one in
EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS, else Docker, else Java and Maven)."""

import asyncio
import sqlite3
from pathlib import Path

from eventplatform import EventProducer
from eventplatform.idempotency import open_store

from {{package}}.events import Greeting
from {{package}}.service import create_app


async def test_a_greeting_is_recorded(
    kafka_bootstrap_servers, unique_topic, create_topic, tmp_path: Path
) -> None:
    topic = await create_topic(unique_topic("greetings"))
    database = tmp_path / "test.db"
    app = create_app(topic=topic, store=open_store(f"sqlite:///{database}"))
    app.bootstrap_servers = kafka_bootstrap_servers
    async with EventProducer(bootstrap_servers=kafka_bootstrap_servers) as producer:
        await producer.publish(Greeting(name="Ada", text="Hello!"), topic=topic)

    serving = asyncio.create_task(app.run())
    try:
        async with asyncio.timeout(60):
            while app.stats.commits < 1:  # handled, its row and offset committed
                await asyncio.sleep(0.1)
    finally:
        app.stop()
        await serving
    db = sqlite3.connect(database)
    try:
        assert db.execute("SELECT name, text FROM greetings").fetchall() == [("Ada", "Hello!")]
    finally:
        db.close()
