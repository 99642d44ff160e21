"""``eventplatform queues …``: the cluster's share groups (work queues, KIP-932).

``list`` names every share group with its state (ListGroups v5, ``TypesFilter=share``, from
every broker); ``describe GROUP`` shows its members with their assigned partitions
(ShareGroupDescribe) and, per share-partition, the start offset, the log end offset and the lag
the broker reports (DescribeShareGroupOffsets v1, KIP-1226). See
:mod:`eventplatform.queue.admin` for what those numbers mean: per-record states (in flight,
archived) are not in any admin RPC of Apache Kafka 4.4, so ``settled`` is what is acknowledged
or archived above the start offset (end - start - lag).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from eventplatform.cli import _clients
from eventplatform.cli._clients import bootstrap_servers
from eventplatform.cli._common import console, fail_on_errors
from eventplatform.cli._tables import fit
from eventplatform.queue.admin import (
    ShareGroupDescription,
    ShareGroupListing,
    admin_client,
    describe_share_group,
    list_share_groups,
)
from eventplatform.settings import Settings, load_settings

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown")


@app.callback()
def _group() -> None:
    """List and describe the cluster's work queues (Kafka share groups)."""


async def _list(settings: Settings) -> list[ShareGroupListing]:
    servers = bootstrap_servers(settings)
    async with admin_client(settings, servers) as client:
        return await list_share_groups(client)


async def _describe(settings: Settings, group: str) -> ShareGroupDescription:
    servers = bootstrap_servers(settings)
    async with admin_client(settings, servers) as client:
        return await describe_share_group(client, group, settings=settings, servers=servers)


@app.command("list")
def list_queues() -> None:
    """List the share groups of the cluster with their state."""
    with fail_on_errors():
        groups = _clients.run(_list(load_settings()))
    table = Table(Column("group", overflow="fold"), "state")
    for listing in groups:
        table.add_row(escape(listing.group), listing.state)
    table.caption = f"{len(groups)} share group{'' if len(groups) == 1 else 's'}"
    console.print(fit(table, console, identifiers=("group",)))


def _number(value: int | None) -> str:
    return "-" if value is None or value < 0 else str(value)


@app.command("describe")
def describe(
    group: Annotated[str, typer.Argument(metavar="GROUP", help="The share group.")],
) -> None:
    """Members, assigned partitions, start offsets, lag and settled records of a share group."""
    with fail_on_errors():
        described = _clients.run(_describe(load_settings(), group))
    console.print(
        f"share group [bold]{escape(described.group)}[/]: {described.state}, epoch "
        f"{described.epoch} (assignment {described.assignment_epoch}), assignor "
        f"{described.assignor}, {len(described.members)} member"
        f"{'' if len(described.members) == 1 else 's'}",
        highlight=False,
    )
    members = Table(
        Column("member", overflow="fold"), "client", "host", "epoch", Column("partitions")
    )
    for member in described.members:
        assigned = ", ".join(f"{topic}[{partition}]" for topic, partition in member.assignment)
        members.add_row(
            member.member_id,
            escape(member.client_id),
            escape(member.client_host),
            str(member.epoch),
            escape(assigned or "-"),
        )
    if described.members:
        console.print(fit(members, console, identifiers=("member",)))
    partitions = Table(
        Column("topic", overflow="fold"),
        "partition",
        "start offset",
        "end offset",
        "lag",
        "settled",
        "error",
    )
    for part in described.partitions:
        partitions.add_row(
            escape(part.topic),
            str(part.partition),
            _number(part.start_offset),
            _number(part.end_offset),
            _number(part.lag),
            _number(part.settled_above_start),
            escape(part.error or ""),
        )
    partitions.caption = (
        "lag: records from the start offset on not acknowledged yet (available or in flight); "
        "settled: acknowledged or archived above the start offset"
    )
    console.print(fit(partitions, console, identifiers=("topic",)))
