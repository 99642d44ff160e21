"""Where webhook deliveries may go: the guard against server-side request forgery (SSRF).

A webhook egress posts to URLs from configuration, often typed in by the people who subscribe.
Without a guard, a subscription to ``http://169.254.169.254/latest/meta-data/`` or
``http://localhost:6379/`` would make the platform send requests into its own network. The
guard follows the OWASP SSRF Prevention Cheat Sheet:

- only ``http`` and ``https`` URLs with a host;
- the host is resolved and **every** address it resolves to is checked: loopback, private
  (RFC 1918, RFC 4193), link-local (RFC 3927, including the cloud metadata address),
  multicast, unspecified, reserved and other non-global ranges (RFC 6890) are refused;
- an IPv6 address that embeds an IPv4 address is judged by the embedded address, since that is
  where a relay, translator or the host's own stack delivers it: IPv4-mapped ``::ffff:0:0/96``
  and IPv4-translated ``::ffff:0:0:0/96`` (RFC 4291, RFC 2765), IPv4-compatible ``::/96``
  (deprecated, RFC 4291 section 2.5.5.1, still routed by some tunnel drivers), 6to4
  ``2002::/16`` (RFC 3056), Teredo ``2001::/32`` (RFC 4380: server and client, the client
  stored inverted) and NAT64's well-known ``64:ff9b::/96`` and local-use ``64:ff9b:1::/48``
  prefixes (RFC 6052, RFC 8215). ``2002:7f00:1::`` is refused as 127.0.0.1 is;
  ``64:ff9b::8.8.8.8`` is allowed as 8.8.8.8 is. Under the local-use prefix the place of the
  IPv4 address depends on a prefix length chosen by the local network, so those addresses are
  refused as a whole;
- the check runs at connect time, in the resolver the HTTP client connects through
  (:class:`GuardedResolver`), so the addresses checked are the addresses connected to: a name
  that resolved to a public address once and resolves to a private one now (DNS rebinding)
  is refused all the same. aiohttp does not resolve IP literals, so :func:`check_url` checks
  those before each request.

``allow_private_addresses = true`` turns the guard off, for development (a receiver on
``127.0.0.1``) and for deployments whose subscribers are all internal.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from eventplatform.errors import UnsafeDestination

__all__ = ["AddressPolicy", "GuardedResolver", "check_url", "unsafe_reason"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


#: RFC 2765 (SIIT) IPv4-translated addresses: ``::ffff:0:a.b.c.d``.
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
#: RFC 4291 section 2.5.5.1 IPv4-compatible addresses: ``::a.b.c.d`` (``::`` and ``::1`` are
#: themselves, the unspecified and loopback addresses).
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
#: RFC 6052 section 2.1: the NAT64 well-known prefix, only ever used as a /96.
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
#: RFC 8215: the local-use NAT64 prefix. A network picks its own prefix length under it (a
#: /48 to a /96, RFC 6052 section 2.2), so where the IPv4 address sits cannot be told from the
#: address: such an address is refused as a whole.
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded(address: ipaddress.IPv6Address) -> tuple[str, list[ipaddress.IPv4Address]] | None:
    """How ``address`` embeds IPv4 addresses, and which, or None when it does not."""
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped address", [address.ipv4_mapped]
    if address.sixtofour is not None:
        return "a 6to4 address", [address.sixtofour]
    if address.teredo is not None:
        server, client = address.teredo  # the client is already un-inverted (RFC 4380 section 4)
        return "a Teredo address", [client, server]
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_TRANSLATED:
        return "an IPv4-translated address", [low32]
    if address in _NAT64_WELL_KNOWN:
        return "a NAT64 address", [low32]
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return "an IPv4-compatible address", [low32]
    return None


def _reason(address: IPAddress) -> str | None:
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        # Shared address space (100.64.0.0/10), documentation ranges, 6to4 relays …
        (not address.is_global, "not a globally routable address"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


def unsafe_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a safe destination, or None when it is a global unicast one.

    An IPv6 address embedding IPv4 addresses is judged by them alone (module docstring):
    refused when one of them is, allowed when all are global.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL_USE:
            return (
                "a local-use NAT64 address (RFC 8215), whose IPv4 address depends on the "
                "local network's prefix length"
            )
        embedding = _embedded(address)
        if embedding is not None:
            kind, embedded = embedding
            for inner in embedded:
                reason = _reason(inner)
                if reason is not None:
                    return f"{kind} embedding {inner}, {reason}"
            return None
    return _reason(address)


def _parse(text: str) -> IPAddress | None:
    try:
        # A scope id (fe80::1%eth0) is not part of the address proper.
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses deliveries may connect to.

    Attributes:
        allow_private: allow every address (the guard is off).
    """

    allow_private: bool = False

    def check(self, host: str, address: str) -> None:
        """Refuse ``address`` (which ``host`` resolved to) unless it is allowed.

        Raises:
            UnsafeDestination: the address is loopback, private, link-local, multicast,
                reserved or otherwise not global, or not an IP address at all.
        """
        if self.allow_private:
            return
        parsed = _parse(address)
        reason = "not an IP address" if parsed is None else unsafe_reason(parsed)
        if reason is not None:
            raise UnsafeDestination(
                f"refusing to deliver to {host} ({address}): {reason}; set "
                "allow_private_addresses = true to allow it",
                host=host,
                address=address,
            )


def check_url(url: str | URL, policy: AddressPolicy) -> URL:
    """``url`` parsed, if it is an http(s) URL the policy allows as far as it can tell.

    A host name is only checked when it is resolved (:class:`GuardedResolver`); an IP literal,
    which is never resolved, is checked here.

    Raises:
        ValueError: not an absolute http or https URL with a host.
        UnsafeDestination: the host is an IP literal the policy refuses.
    """
    parsed = url if isinstance(url, URL) else URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{url!s} is not an absolute http:// or https:// URL")
    host = parsed.raw_host or parsed.host
    if _parse(host) is not None:
        policy.check(host, host)
    return parsed


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses names resolving to an address the policy refuses.

    Give it to the client's connector (``aiohttp.TCPConnector(resolver=...)``): every new
    connection to a host name goes through :meth:`resolve`, and the connector connects only to
    the addresses returned, all of them checked.

    Args:
        policy: the addresses allowed.
        resolver: the resolver doing the lookups; default aiohttp's default resolver.
    """

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._resolver = resolver or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses of ``host``, once every one of them passed the policy.

        Raises:
            UnsafeDestination: one of the addresses is refused (a name that mixes public and
                private addresses is refused as a whole: which one is used is not ours to say).
            OSError: the name does not resolve.
        """
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            self.policy.check(host, result["host"])
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._resolver.close()
