"""Where webhook deliveries may go: the guard against server-side request forgery (SSRF).

A webhook egress posts to URLs from configuration, often typed in by the people who subscribe.
Without a guard, a subscription to ``http://169.254.169.254/latest/meta-data/`` or
``http://localhost:6379/`` would make the platform send requests into its own network. The
guard follows the OWASP SSRF Prevention Cheat Sheet:

- only ``http`` and ``https`` URLs with a host;
- the host is resolved and **every** address it resolves to is checked: loopback, private
  (RFC 1918, RFC 4193), link-local (RFC 3927, including the cloud metadata address),
  multicast, unspecified, reserved and other non-global ranges (RFC 6890) are refused, also
  inside IPv4-mapped IPv6 addresses;
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


def unsafe_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a safe destination, or None when it is a global unicast one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 reaches 127.0.0.1.
        address = address.ipv4_mapped
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
