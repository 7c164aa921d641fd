"""The buyer's address: the one place that reads where a request comes from.

Behind a reverse proxy (nginx, Caddy, a cloud load balancer, a CDN) the connecting peer is the
proxy, and the buyer's address is in ``X-Forwarded-For``, a header anyone can also send
themselves. So the header is believed only when the peer is one of ``KAMEN_TRUSTED_PROXIES``
(addresses or CIDR ranges; none by default), and it is read from the right: each proxy appends
the address it saw, so the first hop from the right that is not a trusted proxy is the last
address a trusted proxy vouched for — whatever the buyer wrote further left is ignored.
``X-Real-IP`` is read where a proxy sends only that.

Anything unreadable — a header too long, a hop that is not an address, more trusted hops than a
real chain has — falls back to the connecting address: a wrong answer must never be an error
page, and never an address the client chose. Tokens are parsed by python-ipware (ports,
brackets, IPv4-mapped IPv6); the trust rule is ours, because ipware's ``proxy_list`` pins the
chain's length instead of skipping trusted hops.

Every reader (rate limits, risk signals, device fingerprint, audit log, orders, callbacks,
look-up, redemption) calls ``client_ip``; a test keeps ``REMOTE_ADDR`` and the forwarding
headers out of every other module.
"""

import functools
import ipaddress

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from python_ipware.modern.parsers import parse_ip

# A real chain is a few hops (CDN, load balancer, proxy) of at most 45 characters each; a
# longer header is someone's padding, not a route.
MAX_HEADER_CHARS = 1024
MAX_TRUSTED_HOPS = 16
_CACHED_ON_REQUEST = "_kamen_client_ip"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(entries: list[str] | tuple[str, ...] | str) -> tuple[Network, ...]:
    """``KAMEN_TRUSTED_PROXIES`` as networks; raises ImproperlyConfigured naming a bad entry
    (a typo must not silently trust nobody, or everybody)."""
    if isinstance(entries, str):
        entries = [entry.strip() for entry in entries.split(",") if entry.strip()]
    networks = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"KAMEN_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR range") from None
        if network.version == 6 and network.prefixlen >= 96 and network.network_address.ipv4_mapped:
            network = ipaddress.ip_network(
                f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}", strict=False
            )
        networks.append(network)
    return tuple(networks)


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_trusted_proxies(entries)


def trusted_proxy_networks() -> tuple[Network, ...]:
    entries = getattr(settings, "KAMEN_TRUSTED_PROXIES", ()) or ()
    if isinstance(entries, str):
        entries = [entry for entry in entries.split(",") if entry.strip()]
    return _networks(tuple(entries))


def _is_trusted(address, networks) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def _from_forwarded_for(header: str, networks) -> str | None:
    """The first hop from the right that is not a trusted proxy, or None (unreadable)."""
    hops = header.rsplit(",", MAX_TRUSTED_HOPS + 1)
    skipped = 0
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            return None
        if not _is_trusted(address, networks):
            return str(address)
        skipped += 1
        if skipped > MAX_TRUSTED_HOPS:
            return None
    # Every hop is a trusted proxy (a health check from inside): the leftmost is the origin.
    return str(address)


def _resolve(meta) -> str | None:
    remote = meta.get("REMOTE_ADDR") or ""
    networks = trusted_proxy_networks()
    if not networks and remote and ":" not in remote:
        # No proxy in front: the server wrote this from the socket. An IPv4 address is taken as
        # it is (parsing costs ~10 µs a request); IPv6 is parsed to unwrap IPv4-mapped forms.
        return remote
    peer = parse_ip(remote)
    if peer is None:
        return None
    if not networks or not _is_trusted(peer, networks):
        return str(peer)
    for name, reader in (
        ("HTTP_X_FORWARDED_FOR", _from_forwarded_for),
        ("HTTP_X_REAL_IP", lambda value, _networks: _single(value)),
    ):
        header = meta.get(name)
        if not isinstance(header, str) or not header.strip():
            continue
        if len(header) > MAX_HEADER_CHARS:
            return str(peer)
        return reader(header, networks) or str(peer)
    return str(peer)


def _single(value: str) -> str | None:
    address = parse_ip(value)
    return str(address) if address is not None else None


def client_ip(request) -> str | None:
    """The address of the client that sent ``request`` (normalised text), or None when the
    connection has none (a test client, a Unix socket). Computed once per request."""
    if request is None:
        return None
    cached = getattr(request, _CACHED_ON_REQUEST, False)
    if cached is not False:
        return cached
    address = _resolve(request.META)
    try:
        setattr(request, _CACHED_ON_REQUEST, address)
    except AttributeError:  # a request stand-in without attributes
        pass
    return address
