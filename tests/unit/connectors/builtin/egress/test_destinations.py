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

from eventplatform.connectors.builtin.egress.connector import WebhookEgressConfig
from eventplatform.connectors.builtin.egress.destinations import (
    AddressPolicy,
    GuardedResolver,
    check_url,
    unsafe_reason,
)
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


def _teredo(server: str, client: str) -> str:
    """A Teredo address (RFC 4380 section 4): prefix, server, flags, port and client inverted."""
    value = (0x2001_0000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) | (0x8000 << 48)
    value |= (0xFFFF ^ 40000) << 32  # the obfuscated port
    value |= int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    return str(ipaddress.IPv6Address(value))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:7f00:1::", "a 6to4 address embedding 127.0.0.1, a loopback address"),
        ("2002:a9fe:a9fe:1::5", "a 6to4 address embedding 169.254.169.254, a link-local"),
        ("2002:c0a8:101::", "a 6to4 address embedding 192.168.1.1, a private address"),
        (_teredo("65.54.227.120", "127.0.0.1"), "a Teredo address embedding 127.0.0.1, a loop"),
        (_teredo("65.54.227.120", "10.0.0.7"), "a Teredo address embedding 10.0.0.7, a private"),
        (_teredo("10.9.9.9", "8.8.8.8"), "a Teredo address embedding 10.9.9.9, a private"),
        ("64:ff9b::7f00:1", "a NAT64 address embedding 127.0.0.1, a loopback address"),
        ("64:ff9b::169.254.169.254", "a NAT64 address embedding 169.254.169.254, a link-local"),
        ("64:ff9b::100.64.0.1", "a NAT64 address embedding 100.64.0.1, not a globally"),
        ("64:ff9b:1::7f00:1", "a local-use NAT64 address (RFC 8215)"),
        ("64:ff9b:1:808:8:800::", "a local-use NAT64 address (RFC 8215)"),  # 8.8.8.8 as a /48
        ("::ffff:172.16.0.1", "an IPv4-mapped address embedding 172.16.0.1, a private"),
        ("::ffff:0:7f00:1", "an IPv4-translated address embedding 127.0.0.1, a loopback"),
        ("::127.0.0.1", "an IPv4-compatible address embedding 127.0.0.1, a loopback"),
        ("::10.0.0.1", "an IPv4-compatible address embedding 10.0.0.1, a private"),
        ("::", "the unspecified address"),  # ::/96 holds :: and ::1, which are themselves
        ("::1", "a loopback address"),
    ],
)
def test_an_embedded_internal_ipv4_address_is_refused_by_its_own_reason(
    address: str, reason: str
) -> None:
    found = unsafe_reason(ipaddress.ip_address(address))
    assert found is not None
    assert found.startswith(reason)
    with pytest.raises(UnsafeDestination, match="refusing to deliver"):
        AddressPolicy().check("hooks.example.com", address)
    with pytest.raises(UnsafeDestination):
        check_url(f"https://[{address}]/hook", AddressPolicy())


@pytest.mark.parametrize(
    "address",
    [
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        _teredo("65.54.227.120", "8.8.8.8"),
        "64:ff9b::8.8.8.8",  # Python calls 64:ff9b::/96 reserved; 8.8.8.8 decides
        "::ffff:8.8.8.8",
        "::ffff:0:8.8.8.8",
        "::8.8.8.8",
    ],
)
def test_an_embedded_global_ipv4_address_decides_for_its_ipv6_address(address: str) -> None:
    assert unsafe_reason(ipaddress.ip_address(address)) is None
    AddressPolicy().check("hooks.example.com", address)


def test_teredo_addresses_are_read_with_the_client_inverted() -> None:
    address = ipaddress.IPv6Address(_teredo("65.54.227.120", "127.0.0.1"))
    # The last 32 bits, read plainly, are a global address: the guard must not read them so.
    plain = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    assert str(plain) == "128.255.255.254"
    assert unsafe_reason(plain) is None
    assert unsafe_reason(address) == "a Teredo address embedding 127.0.0.1, a loopback address"


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
