"""The one error tree of aigw_e2e, so callers can tell a missing build from a failed start.

E2EError
+-- ToolsMissingError     the Go-built tools are not in the cache: run `make tools`
+-- ControlPlaneError     a component did not start or become ready (message has its log)
"""

__all__ = ["ControlPlaneError", "E2EError", "ToolsMissingError"]


class E2EError(Exception):
    """Base of every error raised by aigw_e2e."""


class ToolsMissingError(E2EError):
    """The pinned tools have not been built for the current versions file."""


class ControlPlaneError(E2EError):
    """A control-plane component failed to start, become ready or stop."""
