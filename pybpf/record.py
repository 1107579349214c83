"""Record classes: a dataclass's ``repr``, ``==`` and ``replace`` from a field list.

The stdlib's dataclasses cost start-up time twice: ``import dataclasses`` pulls in
inspect, ast and dis, and every class's methods are source text run through
``exec``.  :class:`Record` has the same methods once, generic over the class's
``_fields``; each class writes its own ``__init__``, whose parameters are
``_fields`` in order (``replace`` calls it by keyword), and its ``__slots__``.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Tuple, TypeVar

R = TypeVar("R", bound="Record")


class Record:
    """``repr``, ``==`` (same class, equal fields) and :meth:`replace` over ``_fields``.

    Mutable, hence unhashable, as a dataclass with ``eq=True``."""

    __slots__ = ()
    #: the ``__init__`` parameters, in order: what repr shows, == compares, replace copies
    _fields: ClassVar[Tuple[str, ...]] = ()
    __hash__ = None         # type: ignore[assignment]

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def replace(self: R, **changes: Any) -> R:
        """A new record of this class: these fields changed, the others as here."""
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        make: Callable[..., R] = type(self)
        return make(**values)


class FrozenRecord(Record):
    """A :class:`Record` whose fields are set once, by ``_init``: immutable and hashable
    (as a dataclass with ``frozen=True``)."""

    __slots__ = ()

    def _init(self, *values: Any) -> None:
        """Set the fields, in ``_fields`` order (an ``__init__`` calls it once)."""
        for name, value in zip(self._fields, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__qualname__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__qualname__} is frozen: cannot delete {name!r}")

    def __hash__(self) -> int:      # type: ignore[override]
        return hash(self._values())

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        """copy and pickle rebuild through ``__init__`` (``__setattr__`` refuses)."""
        return type(self), self._values()
