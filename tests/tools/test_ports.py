"""The ports test servers listen on: free, distinct, and outside the kernel's ephemeral range
(where outgoing connections take their source ports between a port's choice and its bind)."""

from __future__ import annotations

import socket
from pathlib import Path

from aigw_e2e.processes import free_ports


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = free_ports(50)
    assert len(set(ports)) == 50
    assert all(1024 <= port < low for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
