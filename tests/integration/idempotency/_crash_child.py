"""A consumer stand-in that the crash test SIGKILLs in the middle of a transactional batch.

Usage: ``python _crash_child.py URL TABLE EFFECTS_TABLE``. Commits a first batch (keys a, b),
prints ``committed``, then claims c and d, writes their effects, prints ``ready`` and waits
inside the open batch to be killed.
"""

from __future__ import annotations

import asyncio
import sys

from eventplatform.idempotency import open_store


async def main(url: str, table: str, effects: str) -> None:
    mark = "?" if url.startswith("sqlite") else "$1"
    insert = f"INSERT INTO {effects} (key) VALUES ({mark})"
    async with open_store(url, table=table, purge_interval=None) as store:
        async with store.batch("g", owner="child") as batch:
            for key in (await batch.claim(["a", "b"])).fresh:
                async with batch.unit(key) as unit:
                    await unit.execute(insert, key)
        print("committed", flush=True)
        async with store.batch("g", owner="child") as batch:
            for key in (await batch.claim(["c", "d"])).fresh:
                async with batch.unit(key) as unit:
                    await unit.execute(insert, key)
            print("ready", flush=True)
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
