"""The SSRF guard of the webhook egress: which addresses are refused, and where it checks them.

No test here connects anywhere: names resolve through a fake resolver, and the guard refuses
before a connection is attempted.
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from eventplatform.connectors.destinations import (
    AddressPolicy,
    GuardedResolver,
    check_url,
    unsafe_reason,
)
from eventplatform.connectors.webhook_egress import WebhookEgressConfig
from eventplatform.errors import UnsafeDestination

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud instance metadata
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not a globally routable"),  # carrier-grade NAT
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
        ("::ffff:127.0.0.1", "loopback"),
    ],
)
def test_non_global_addresses_are_refused(address: str, reason: str) -> None:
    found = unsafe_reason(ipaddress.ip_address(address))
    assert found is not None
    assert reason in found
    with pytest.raises(UnsafeDestination, match=reason) as refused:
        AddressPolicy().check("hooks.example.com", address)
    assert refused.value.address == address


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_global_addresses_are_allowed(address: str) -> None:
    assert unsafe_reason(ipaddress.ip_address(address)) is None
    AddressPolicy().check("hooks.example.com", address)


def test_allow_private_turns_the_guard_off() -> None:
    AddressPolicy(allow_private=True).check("localhost", "127.0.0.1")


def test_a_scope_id_does_not_hide_a_link_local_address() -> None:
    with pytest.raises(UnsafeDestination, match="link-local"):
        AddressPolicy().check("printer.local", "fe80::1%eth0")


def test_check_url_refuses_private_ip_literals_and_other_schemes() -> None:
    policy = AddressPolicy()
    with pytest.raises(UnsafeDestination, match="private"):
        check_url("http://10.0.0.8:8080/hooks", policy)
    with pytest.raises(UnsafeDestination, match="loopback"):
        check_url("http://[::1]/hooks", policy)
    with pytest.raises(ValueError, match="http"):
        check_url("ftp://files.example.com/x", policy)
    assert check_url("https://hooks.example.com/x", policy).host == "hooks.example.com"
    assert check_url("http://127.0.0.1:9/x", AddressPolicy(allow_private=True)).port == 9


class FakeResolver(AbstractResolver):
    """Resolves every name to the given addresses, without DNS."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_the_resolver_refuses_a_name_with_any_private_address() -> None:
    resolver = GuardedResolver(AddressPolicy(), FakeResolver("93.184.215.14", "10.0.0.5"))
    with pytest.raises(UnsafeDestination, match=r"hooks\.example\.com \(10\.0\.0\.5\)"):
        await resolver.resolve("hooks.example.com", 443)
    public = GuardedResolver(AddressPolicy(), FakeResolver("93.184.215.14"))
    (result,) = await public.resolve("hooks.example.com", 443)
    assert result["host"] == "93.184.215.14"


async def test_a_request_is_refused_at_connect_time_without_any_traffic() -> None:
    # A name that resolves to the metadata address (DNS rebinding): refused by the connector's
    # resolver, before any connection is attempted.
    fake = FakeResolver("169.254.169.254")
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(AddressPolicy(), fake))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(UnsafeDestination, match="link-local"):
            await session.post("http://rebinding.example.com/hooks", data=b"{}")
    assert fake.asked == ["rebinding.example.com"]


def test_the_config_refuses_private_ip_literal_endpoints_unless_allowed() -> None:
    endpoint = {"name": "internal", "url": "http://10.0.0.8/hooks", "secret": SECRET}
    with pytest.raises(ValueError, match=r"internal: refusing to deliver to 10\.0\.0\.8"):
        WebhookEgressConfig(endpoints=[endpoint])
    allowed = WebhookEgressConfig(endpoints=[endpoint], allow_private_addresses=True)
    assert allowed.endpoints[0].url == "http://10.0.0.8/hooks"
