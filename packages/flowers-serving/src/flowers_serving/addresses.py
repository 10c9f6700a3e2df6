"""Which IP addresses a URL may make us connect to: the SSRF policy, in one table.

requests-hardened already refuses private, loopback, link-local, CGNAT,
multicast and IPv4-mapped addresses. This policy is stricter and is applied
twice, before any socket to the target opens: to IP literals in the URL, and
to the address the host resolved to. Only globally reachable unicast
addresses pass (``ipaddress``'s ``is_global``), and, since a "global" IPv6
address can still lead to an IPv4 host inside our network, every deprecated
or IPv4-embedding IPv6 form is refused outright.
"""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ["REFUSED_NETWORKS", "forbidden_reason", "parse_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Networks refused whatever ``is_global`` says, with the reason we give.
REFUSED_NETWORKS: Final[tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("::1/128", "loopback"),
        ("::/128", "unspecified"),
        # IPv6 forms that embed (or route to) an IPv4 address.
        ("::/96", "IPv4-compatible IPv6 (deprecated)"),
        ("::ffff:0:0/96", "IPv4-mapped IPv6"),
        ("::ffff:0:0:0/96", "IPv4-translated IPv6 (SIIT)"),
        ("64:ff9b::/96", "NAT64"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("2002::/16", "6to4"),
        ("2001::/32", "Teredo"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        # Deprecated, local or special-purpose IPv6.
        ("fec0::/10", "site-local IPv6 (deprecated)"),
        ("fc00::/7", "unique-local IPv6"),
        ("fe80::/10", "link-local IPv6"),
        ("ff00::/8", "multicast"),
        ("100::/64", "discard-only IPv6"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("2001:10::/28", "ORCHID"),
        ("2001:20::/28", "ORCHIDv2"),
        ("5f00::/16", "IPv6 segment routing"),
        # IPv4 ranges that is_global alone may not cover on every Python.
        ("0.0.0.0/8", "this network"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)


def parse_ip(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is a literal one (brackets and IPv6 zone allowed), else None."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def forbidden_reason(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why we refuse to connect to ``ip``, or None if it is a public unicast address.

    ``allow_loopback`` (local tests only) lets 127.0.0.0/8 and ::1 through, nothing else.
    """
    if allow_loopback:
        plain = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
        if plain.is_loopback:
            return None
    for network, why in REFUSED_NETWORKS:
        if ip.version == network.version and ip in network:
            return why
    if ip.is_loopback:
        return "loopback"
    if ip.is_multicast:
        return "multicast"
    if not ip.is_global:
        return "private or reserved"
    return None
