"""Free loopback ports (never fixed ones: the machine is shared).

The same picker as the control plane's: below the kernel's ephemeral range, so a port chosen
now is not taken as the source port of some outgoing connection before the server binds it.
"""

from __future__ import annotations

from aigw_e2e.processes import free_port, free_ports

__all__ = ["free_port", "free_ports"]
