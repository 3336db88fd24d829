"""Where things live on the network, from embodia's side: which hosts count as this machine (the one rule
that every listening server here applies before it binds: the policy server asks for an API key off
loopback, the viewer refuses to leave it). Hub ids: embodia.hub."""

from __future__ import annotations

import ipaddress

# The names a local browser or client uses for this machine.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps a server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname: assume it is reachable from elsewhere
