"""JSON-lines file source: follows a file like ``tail -F``, one event per line.

An instance::

    # connectors/orders-file.toml
    type = "file-source"
    topic = "orders"
    event_type = "com.example.orders.OrderPlaced"

    [settings]
    path = "/var/spool/orders.jsonl"
    key_field = "order_id"

Each complete line (ending in ``\\n``) is validated into the event type
(:func:`~eventplatform.connectors.sdk.payloads.parse_event`) and published; a line still being
written (no newline yet) waits. Blank lines are skipped.

**Positions.** The source partition is ``{"path": <absolute path>}``; the offset is
``{"position": <byte after the line>, "inode": <file's inode>, "line": <its number>}``,
committed once the line's record is durable. A restart resumes at that byte of the same file.
Event ids are derived from (connector, path, inode, byte position), so a line re-read after a
crash is published with the same id and consumers deduplicate it.

**Rotation and truncation.** When the path names a new file (a new inode: ``logrotate``'s
rename-and-create), the old file is read to its end first (a last line without a newline
counts as complete then), and the new one from its start. When the file shrinks below the
position (``copytruncate``), reading restarts at byte 0; like ``tail -F``, it cannot tell a
truncation that was written past the old size before the next check (``poll_interval``) from
an append. If the file was replaced while the
connector was *not* running, the committed inode no longer matches and the new file is read
from its start: the tail of the old file is not looked for under its rotated name.

**Bad lines.** A line that is not JSON, not UTF-8, does not fit the event type, or is longer
than ``max_line_bytes`` goes to the dead-letter topic (``<topic>.dlq`` unless configured) as
it was read, with the error and ``eventplatform.errors.source.{path,line,position}`` headers;
it is counted in ``errors`` and logged with its line number, and the source moves on. With
``dead_letter = false`` it is only counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from eventplatform.connectors.sdk.connector import Source, SourceConfig
from eventplatform.connectors.sdk.deadletters import dead_letter
from eventplatform.connectors.sdk.payloads import parse_event
from eventplatform.connectors.sdk.records import SourcePosition, SourceRecord
from eventplatform.errors import ConnectorConfigError, InvalidPayload
from eventplatform.schema import AvroEvent

__all__ = ["FileSource", "FileSourceConfig"]

log = logging.getLogger("eventplatform.connectors.builtin.files.source")

# Event ids of lines: uuid5 in a namespace of their own (RFC 9562 §5.5).
_ID_NAMESPACE = uuid.UUID("6a1d3b7e-9c2f-5e84-b0a6-3f5d8c1e2b49")


class FileSourceConfig(SourceConfig):
    """Settings of a JSON-lines file source (the ``[settings]`` table)."""

    path: Path = Field(description="The file to follow; it may not exist yet.")
    start_at: Literal["beginning", "end"] = Field(
        default="beginning", description="Where to start in a file without a committed position."
    )
    poll_interval: float = Field(default=0.2, gt=0, description="Seconds between checks at EOF.")
    key_field: str | None = Field(default=None, description="Event field used as Kafka key.")
    dead_letter: bool = Field(default=True, description="Route bad lines to a dead-letter topic.")
    dead_letter_topic: str | None = Field(default=None, description="Default <topic>.dlq.")
    max_line_bytes: int = Field(default=1 << 20, gt=0)
    read_bytes: int = Field(default=1 << 16, gt=0, description="Bytes read at a time.")


@dataclass(slots=True)
class _Open:
    """The file being read: descriptor, identity, where reading is."""

    fd: int
    inode: int
    read_to: int  # bytes read so far
    line: int = 0  # number of the last line handed out
    buffer: bytes = b""  # read, not yet a complete line
    skipping: bool = False  # inside an overlong line, up to its newline

    @property
    def buffer_start(self) -> int:
        """The byte position of ``buffer[0]``."""
        return self.read_to - len(self.buffer)


class FileSource(Source[FileSourceConfig]):
    """JSON-lines file → topic (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        assert self.event_type is not None  # requires_event_type
        self._event_type: type[AvroEvent] = self.event_type
        key_field = self.config.key_field
        if key_field is not None and key_field not in self._event_type.model_fields:
            raise ConnectorConfigError(
                f"connector {self.name!r}: key_field {key_field!r} is not a field of "
                f"{self._event_type.__avro_name__}",
                key="settings.key_field",
            )
        self.path = self.config.path.expanduser().absolute()
        self.partition = {"path": str(self.path)}
        self.dead_letter_topic = self.config.dead_letter_topic or f"{self.topic}.dlq"

    async def records(self) -> AsyncIterator[SourceRecord]:
        """The lines of the file as they are written, until stopped."""
        current: _Open | None = None
        rotated = False  # a new file is at the path; the old one is read to its end first
        try:
            while not self.stopping:
                if current is None:
                    current = await self._open_file()
                    if current is None:  # the file does not exist (yet)
                        await self.idle(self.config.poll_interval)
                        continue
                chunk = await asyncio.to_thread(
                    os.pread, current.fd, self.config.read_bytes, current.read_to
                )
                if chunk:
                    for record in self._take(current, chunk):
                        yield record
                    continue
                if rotated:
                    # Read to its end since the new file was seen: the old file is complete,
                    # so is its last line.
                    if current.buffer and not current.skipping:
                        last = self._record(current.buffer, current.buffer_start, current)
                        if last is not None:
                            yield last
                    log.info("%s: %s was rotated; reading the new file", self.name, self.path)
                    os.close(current.fd)
                    current, rotated = await self._open_file(fresh=True), False
                    continue
                # At the end: has the file been rotated or truncated?
                replaced, truncated = await asyncio.to_thread(self._check, current)
                if replaced:
                    # Lines written to the old file between the last read and the rename being
                    # seen come first: read it once more before switching.
                    rotated = True
                elif truncated:
                    log.info("%s: %s was truncated; reading from its start", self.name, self.path)
                    current.read_to = current.line = 0
                    current.buffer, current.skipping = b"", False
                else:
                    await self.idle(self.config.poll_interval)
        finally:
            if current is not None:
                os.close(current.fd)

    def _take(self, current: _Open, chunk: bytes) -> list[SourceRecord]:
        """The records of the complete lines ``chunk`` finishes."""
        current.read_to += len(chunk)
        if current.skipping:  # the rest of an overlong line, already dead-lettered
            newline = chunk.find(b"\n")
            if newline < 0:
                return []
            chunk, current.skipping = chunk[newline + 1 :], False
        current.buffer += chunk
        records = []
        cut = current.buffer.rfind(b"\n") + 1
        if cut:
            start = current.buffer_start
            complete, current.buffer = current.buffer[:cut], current.buffer[cut:]
            for text in complete[:-1].split(b"\n"):
                line = text + b"\n"
                too_long = len(text) > self.config.max_line_bytes
                record = self._record(line, start, current, too_long=too_long)
                start += len(line)
                if record is not None:
                    records.append(record)
        if len(current.buffer) > self.config.max_line_bytes:
            record = self._record(current.buffer, current.buffer_start, current, too_long=True)
            current.buffer, current.skipping = b"", True
            if record is not None:
                records.append(record)
        return records

    async def _open_file(self, *, fresh: bool = False) -> _Open | None:
        """Open the file at the path; None when there is none yet."""
        try:
            fd = await asyncio.to_thread(os.open, self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        status = os.fstat(fd)
        opened = _Open(fd, status.st_ino, 0)
        committed = None if fresh else self.committed(self.partition)
        if committed is not None and committed.get("inode") == status.st_ino:
            position = int(committed.get("position", 0))
            if position <= status.st_size:
                opened.read_to, opened.line = position, int(committed.get("line", 0))
        elif committed is None and not fresh and self.config.start_at == "end":
            opened.read_to = status.st_size
        return opened

    def _check(self, current: _Open) -> tuple[bool, bool]:
        """``(replaced, truncated)`` for the file being read, at its end."""
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            return False, False  # mid-rotation: the new file is not there yet
        if at_path.st_ino != current.inode:
            return True, False
        return False, os.fstat(current.fd).st_size < current.read_to

    def _record(
        self, line: bytes, start: int, current: _Open, *, too_long: bool = False
    ) -> SourceRecord | None:
        """The record of the line that starts at byte ``start`` (None for a blank line)."""
        current.line += 1
        end = start + len(line)
        position = SourcePosition(
            self.partition, {"position": end, "inode": current.inode, "line": current.line}
        )
        text = line.rstrip(b"\r\n")
        if not text.strip() and not too_long:
            return None
        if too_long:
            text = text[: self.config.max_line_bytes]
        try:
            if too_long:
                raise InvalidPayload(
                    f"the line is longer than {self.config.max_line_bytes} bytes",
                    errors=[("$", "line too long")],
                )
            event = parse_event(self._event_type, text)
        except InvalidPayload as exc:
            return self._bad_line(text, exc, start, current, position)
        identity = f"{self.name}\x00{self.path}\x00{current.inode}\x00{start}"
        key_field = self.config.key_field
        return SourceRecord(
            event=event,
            key=str(getattr(event, key_field)) if key_field else None,
            event_id=str(uuid.uuid5(_ID_NAMESPACE, identity)),
            position=position,
        )

    def _bad_line(
        self,
        text: bytes,
        exc: InvalidPayload,
        start: int,
        current: _Open,
        position: SourcePosition,
    ) -> SourceRecord | None:
        where = f"{self.path}:{current.line}"
        self.stats.failed(f"{where}: {exc}")
        self.stats.count("bad_lines")
        log.warning("%s: bad line %s (byte %d): %s", self.name, where, start, exc)
        if not self.config.dead_letter:
            return None
        self.stats.count("dead_lettered")
        return dead_letter(
            text,
            connector=self.name,
            connector_class=f"{type(self).__module__}.{type(self).__qualname__}",
            dlq_topic=self.dead_letter_topic,
            topic=self.topic or "",
            error=exc,
            origin={"path": self.path, "line": current.line, "position": start},
            position=position,
        )
