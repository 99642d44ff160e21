"""JSON-lines file sink: each event appended to a file as one line, durable before it counts.

An instance::

    # connectors/orders-file.toml
    type = "file-sink"
    topic = "orders"
    event_type = "com.example.orders.OrderPlaced"

    [settings]
    path = "var/orders.jsonl"

**Lines** are CloudEvents in the JSON event format (CloudEvents 1.0 "JSON Event Format"): the
event's attributes, ``datacontenttype`` ``application/json``, the extension attributes
``idempotencykey``, ``kafkatopic``, ``kafkapartition`` and ``kafkaoffset``, and the event
itself as ``data`` (pydantic's JSON of the event class: decimals and UUIDs as strings, RFC
3339 times)::

    {"specversion":"1.0","id":"…","source":"/connectors/orders-in",
     "type":"com.example.orders.OrderPlaced","time":"2026-05-01T12:00:00.000000Z",
     "datacontenttype":"application/json","idempotencykey":"…","kafkatopic":"orders",
     "kafkapartition":0,"kafkaoffset":41,"data":{"order_id":"…",…}}

**Durability.** :meth:`FileSink.deliver` returns only once its line is written and
``fsync``-ed, so the EventApp commits the offset (and records the idempotency key) after the
line is on disk. Lines are written in batches (group commit): deliveries that arrive while a
write is in progress share the next write and its ``fsync``.

**No duplicates across restarts.** A crash after a line was written but before its offset was
committed delivers the event again. The sink remembers the idempotency keys of the file's last
``dedup_window`` lines (read back from the file at start, then kept as it appends) and skips an
event whose key is among them; the app's idempotency store skips the ones it recorded as done.
The window must cover the events a crash can leave uncommitted: a few polls
(``consumer.max_poll_records``, 500 by default). A line cut short by a crash (no final
newline) was never acknowledged: it is truncated away at start, and written again whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import Any

from pydantic import Field

from eventplatform.app import Context
from eventplatform.cloudevents import format_time
from eventplatform.connectors.sdk.connector import Sink, SinkConfig
from eventplatform.errors import ConnectorError, ConnectorUnavailable
from eventplatform.schema import AvroEvent

__all__ = ["FileSink", "FileSinkConfig"]

log = logging.getLogger("eventplatform.connectors.builtin.files.source")

_TAIL_CHUNK = 1 << 16


class FileSinkConfig(SinkConfig):
    """Settings of a JSON-lines file sink (the ``[settings]`` table)."""

    path: Path = Field(description="The file lines are appended to; created with its folder.")
    fsync: bool = Field(default=True, description="fsync after each batch of lines.")
    max_batch: int = Field(default=1000, gt=0, description="Lines written per write + fsync.")
    linger: float = Field(
        default=0.0, ge=0, description="Seconds a write waits for more lines to join it."
    )
    dedup_window: int = Field(
        default=10_000, ge=0, description="Idempotency keys of the last lines remembered."
    )


class _RecentKeys:
    """The idempotency keys of the last ``size`` lines: a bounded, ordered set."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._order: deque[str] = deque()
        self._keys: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        if self.size == 0 or key in self._keys:
            return
        self._order.append(key)
        self._keys.add(key)
        while len(self._order) > self.size:
            self._keys.discard(self._order.popleft())


class _Appender:
    """Appends lines to a file descriptor in batches; each waiter learns when its line is durable.

    Args:
        fd: the file, opened with ``O_APPEND``.
        fsync: whether a batch is ``fsync``-ed before its waiters return.
        max_batch: lines per write.
        linger: seconds to wait for more lines before a write.
    """

    def __init__(self, fd: int, *, fsync: bool, max_batch: int, linger: float) -> None:
        self._fd = fd
        self._fsync = fsync
        self._max_batch = max_batch
        self._linger = linger
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._flush_loop(), name="file sink appender")
        self.batches = 0

    async def append(self, line: bytes) -> None:
        """Append ``line`` and return once it is durable.

        Raises:
            ConnectorUnavailable: the write or fsync failed (retriable: disk full, I/O error).
            ConnectorError: the appender is closed.
        """
        if self._closing:
            raise ConnectorError("the file sink is closing")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((line, done))
        self._wakeup.set()
        await done

    async def _flush_loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._linger and len(self._pending) < self._max_batch and not self._closing:
                await asyncio.sleep(self._linger)
            batch = self._pending[: self._max_batch]
            del self._pending[: len(batch)]
            try:
                await asyncio.to_thread(self._write, b"".join(line for line, _ in batch))
            except OSError as exc:
                error = ConnectorUnavailable(f"writing to the sink file failed: {exc}")
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                continue
            self.batches += 1
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self._fsync:
            os.fsync(self._fd)

    async def close(self) -> None:
        """Write what is pending, then stop."""
        self._closing = True
        self._wakeup.set()
        await asyncio.gather(self._task, return_exceptions=True)


class FileSink(Sink[FileSinkConfig]):
    """Topic → JSON-lines file (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = self.config.path.expanduser().absolute()
        self._recent = _RecentKeys(self.config.dedup_window)
        self._fd: int | None = None
        self._appender: _Appender | None = None

    async def on_start(self) -> None:
        """Open the file (creating it and its folder), repair its tail, read its last keys.

        Raises:
            ConnectorUnavailable: the file cannot be opened or read.
        """
        try:
            self._fd = await asyncio.to_thread(self._open_file)
            keys = await asyncio.to_thread(self._tail_keys, self._fd)
        except OSError as exc:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            raise ConnectorUnavailable(f"file sink {self.name}: {self.path}: {exc}") from exc
        for key in keys:
            self._recent.add(key)
        config = self.config
        self._appender = _Appender(
            self._fd, fsync=config.fsync, max_batch=config.max_batch, linger=config.linger
        )
        log.info("file sink %s: appending to %s", self.name, self.path)

    async def on_stop(self) -> None:
        """Write what is pending and close the file."""
        appender, self._appender = self._appender, None
        if appender is not None:
            await appender.close()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _open_file(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:
                last = os.pread(fd, 1, size - 1)
                if last != b"\n":
                    self._truncate_torn_line(fd, size)
        except OSError:
            os.close(fd)
            raise
        return fd

    def _truncate_torn_line(self, fd: int, size: int) -> None:
        end = size
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            chunk = os.pread(fd, end - start, start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        else:
            keep = 0
        log.warning(
            "file sink %s: %s ends in a line cut short (%d bytes) by a crash; removing it (its "
            "event was not acknowledged and is written again)",
            self.name,
            self.path,
            size - keep,
        )
        os.ftruncate(fd, keep)
        os.fsync(fd)

    def _tail_keys(self, fd: int) -> list[str]:
        """The idempotency keys of the file's last ``dedup_window`` lines, oldest first."""
        wanted = self.config.dedup_window
        end = os.fstat(fd).st_size
        lines: list[bytes] = []
        rest = b""
        while end > 0 and len(lines) < wanted:
            start = max(0, end - _TAIL_CHUNK)
            chunk = os.pread(fd, end - start, start) + rest
            end = start
            parts = chunk.split(b"\n")
            rest = parts[0] if start > 0 else b""
            lines[:0] = [line for line in (parts[1:] if start > 0 else parts) if line]
        keys = []
        for line in lines[-wanted:] if wanted else []:
            try:
                key = json.loads(line).get("idempotencykey")
            except (ValueError, AttributeError):
                continue  # not a line of ours: nothing to deduplicate against
            if isinstance(key, str):
                keys.append(key)
        return keys

    def line(self, event: AvroEvent, ctx: Context) -> bytes:
        """The JSON line of ``event`` (see the module docstring), newline included."""
        meta = ctx.metadata
        record: dict[str, Any] = {
            "specversion": meta.specversion,
            "id": meta.id,
            "source": meta.source,
            "type": meta.type,
            "time": format_time(meta.time),
        }
        if meta.subject is not None:
            record["subject"] = meta.subject
        record["datacontenttype"] = "application/json"
        record["idempotencykey"] = meta.idempotency_key
        if meta.traceparent:
            record["traceparent"] = meta.traceparent
        record["kafkatopic"] = ctx.topic
        record["kafkapartition"] = ctx.partition
        record["kafkaoffset"] = ctx.offset
        record["data"] = event.model_dump(mode="json")
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    async def deliver(self, event: AvroEvent, ctx: Context) -> None:
        """Append ``event`` as a line, unless the file's last lines hold its key already.

        Raises:
            ConnectorUnavailable: the write failed (retried by the app, then dead-lettered).
            ConnectorError: the sink is not started.
        """
        appender = self._appender
        if appender is None:
            raise ConnectorError(f"file sink {self.name} is not started")
        key = ctx.idempotency_key
        if key in self._recent:
            self.stats.count("duplicates")
            return
        await appender.append(self.line(event, ctx))
        self._recent.add(key)
