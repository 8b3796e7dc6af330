"""``Record``: the one base for immutable value records on the plugins' exec path.

A subclass lists its fields as annotations, with defaults as class attributes::

    class PortMapping(Record):
        host_port: int
        protocol: str = "tcp"

and gets keyword or positional construction, equality and hashing by value, a readable
``repr``, ``_replace`` and ``_asdict``; assigning to a field raises ``AttributeError``.
Type checkers see the constructor as they would a dataclass's (``dataclass_transform``).

Why not ``dataclasses`` or ``typing.NamedTuple``: every plugin call is a fresh interpreter.
Importing ``dataclasses`` costs several milliseconds (it pulls in ``inspect``), and each
``NamedTuple`` class costs about 0.3 ms to create (its ``__new__`` is compiled with
``eval``); a subclass of this base costs a few microseconds.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self, dataclass_transform


@dataclass_transform(eq_default=True, frozen_default=True)
class Record:
    """Immutable value record (see the module docstring)."""

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = list(cls._fields)
        defaults = dict(cls._defaults)
        for name in cls.__dict__.get("__annotations__", {}):
            if name.startswith("_") or name in fields:
                continue
            fields.append(name)
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
        cls._fields = tuple(fields)
        cls._defaults = defaults

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._fields
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} fields, got {len(args)}")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__} has no field {key!r}")
            if key in values:
                raise TypeError(f"{type(self).__name__} got {key!r} twice")
            values[key] = value
        # the instance dict written directly (``__setattr__`` refuses), in field order
        state = self.__dict__
        defaults = self._defaults
        for name in names:
            if name in values:
                state[name] = values[name]
            elif name in defaults:
                state[name] = defaults[name]
            else:
                raise TypeError(f"{type(self).__name__} needs {name!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"

    def _replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied."""
        return type(self)(**{**self._asdict(), **changes})

    def _asdict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}
