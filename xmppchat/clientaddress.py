"""
The address of a client behind a trusted reverse proxy (issue 15 finding
6): per-address limits, the failed-login throttle and logs must see the
client, not the proxy, yet never believe a forwarded address from anyone
else.

C{[limits] trusted_proxies} lists the proxies' networks (CIDRs).  A
request from a trusted peer names its client in C{X-Forwarded-For}
(de-facto standard; RFC 7239 §5.2 describes the same chain for
C{Forwarded: for=}): each proxy appends the address it received the
request from, so the client is the right-most entry that is not itself a
trusted proxy (what nginx's C{real_ip_recursive} and Apache's
C{mod_remoteip} take).  From an untrusted peer the header is ignored: the
peer's own address counts.
"""

from __future__ import annotations

import ipaddress

MAX_FORWARDED_ENTRIES = 20


def parseNetworks(cidrs) -> list:
    """
    C{ipaddress} networks for C{cidrs} (C{"10.0.0.0/8"}, C{"::1"});
    C{ValueError} names the first unusable one.
    """
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an address or network (CIDR): {cidr!r}") from None
    return networks


def _ip(text: str):
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


class TrustedProxies:
    """
    The configured proxies and the client address behind them.
    """

    def __init__(self, cidrs=()):
        self.networks = parseNetworks(cidrs)

    @classmethod
    def fromConfig(cls, limits) -> TrustedProxies:
        return cls(getattr(limits, "trusted_proxies", ()))

    def trusts(self, address: str) -> bool:
        """
        Whether C{address} is one of the trusted proxies.
        """
        if not self.networks:
            return False
        ip = _ip(address)
        if ip is None:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def client(self, peer: str, forwardedFor: str | None) -> str:
        """
        The client's address: C{peer} itself unless it is a trusted proxy
        that sent C{X-Forwarded-For}; then the right-most entry that is not
        a trusted proxy (a malformed entry stops the walk at the last
        good one: what is left of it was written by the client).
        """
        if not forwardedFor or not self.trusts(peer):
            return peer
        client = peer
        for entry in reversed(forwardedFor.split(",")[-MAX_FORWARDED_ENTRIES:]):
            ip = _ip(entry)
            if ip is None:
                break
            client = str(ip)
            if not self.trusts(client):
                break
        return client

    def ofRequest(self, request) -> str:
        """
        The client address of a C{twisted.web} request.
        """
        peer = getattr(request.getClientAddress(), "host", None) or ""
        values = request.requestHeaders.getRawHeaders(b"x-forwarded-for") or ()
        return self.client(peer, b",".join(values).decode("latin-1"))


__all__ = ["TrustedProxies", "parseNetworks"]
