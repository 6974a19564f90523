"""Typed state: ``state[Key[T]]`` maps instead of dicts keyed by strings or request ids.

Three places hold state that many plug-ins share, each a :class:`State`:

- ``ctx.state``: one request's state (a step's reservation, a cache lookup, a redaction
  map). It lives and dies with the request: no step keeps a dict keyed by request id.
- ``config.prepared``: per-bundle state built by ``Step.prepare`` before the bundle is
  swapped in (a policy index, rendered bodies); read-only once the config is current.
- ``attempt.backend_state``: per (route, backend) state that outlives bundle reloads
  (circuit breakers, passive health); see :class:`~aigw_sidecar.attempts.BackendStates`.

A :class:`Key` is declared once, at module level, next to the code that owns the value, in
the spirit of aiohttp's ``AppKey``::

    HELD = Key[Reservation]("limits.held")         # or Key("limits.held", Reservation)
    ctx.state[HELD] = reservation                  # mypy checks the value's type
    held = ctx.state.get(HELD)                     # Reservation | None

Keys compare by identity, so two modules can never collide by choosing the same name; the
name is for ``repr`` and debugging only. The well-known keys that an audit record reads
(identity, admission) are in :mod:`aigw_sidecar.keys`.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, overload

__all__ = ["Key", "State"]

T = TypeVar("T")
D = TypeVar("D")


class Key(Generic[T]):
    """A typed key of a :class:`State`. Compare by identity; declare once per value."""

    __slots__ = ("name", "type")

    def __init__(self, name: str, type_: type[T] | None = None) -> None:
        self.name = name
        self.type = type_

    def __repr__(self) -> str:
        return f"<Key {self.name}>"


class State:
    """A map from :class:`Key` to values of the key's type."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[Key[Any], Any] = {}

    def __getitem__(self, key: Key[T]) -> T:
        value: T = self._values[key]
        return value

    def __setitem__(self, key: Key[T], value: T) -> None:
        self._values[key] = value

    def __contains__(self, key: Key[Any]) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def get(self, key: Key[T]) -> T | None: ...
    @overload
    def get(self, key: Key[T], default: D) -> T | D: ...
    def get(self, key: Key[T], default: object = None) -> object:
        return self._values.get(key, default)

    @overload
    def pop(self, key: Key[T]) -> T | None: ...
    @overload
    def pop(self, key: Key[T], default: D) -> T | D: ...
    def pop(self, key: Key[T], default: object = None) -> object:
        return self._values.pop(key, default)

    def setdefault(self, key: Key[T], value: T) -> T:
        """The value of ``key``, set to ``value`` first if it had none."""
        result: T = self._values.setdefault(key, value)
        return result

    def clear(self) -> None:
        self._values.clear()

    def __repr__(self) -> str:
        return f"State({', '.join(k.name for k in self._values)})"
