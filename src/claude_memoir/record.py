"""``Record``: typed, immutable value classes without ``dataclasses``.

Rows of the store and the settings are read by every hook, and a hook runs on
every tool call. ``@dataclass`` generates each class's methods with ``exec`` at
import time and pulls in ``inspect``: measured 7-10 ms per hook process for the
store's six row types and the settings, a third of the interpreter's whole
start-up. A ``Record`` subclass declares its fields as annotations (defaults as
class attributes, in the dataclass style) and gets keyword construction,
immutability, equality, ``repr`` and ``_asdict`` from this one base class,
whose cost is paid once.
"""

from __future__ import annotations

_MISSING = object()


class Record:
    """Base of immutable value classes: fields are the class's annotations, in order.

    Construct by keyword (``Row(id=1, name="x")``); fields without a class-level
    default are required, unknown keywords are errors, as with a dataclass.
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        own = tuple(cls.__dict__.get("__annotations__", {}))
        cls._fields = tuple(f for f in cls._fields if f not in own) + own

    def __init__(self, **values: object) -> None:
        cls = type(self)
        for name in cls._fields:
            value = values.pop(name, _MISSING)
            if value is _MISSING:
                value = getattr(cls, name, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{cls.__name__}() missing required field {name!r}")
            object.__setattr__(self, name, value)
        if values:
            raise TypeError(f"{cls.__name__}() got unexpected field(s) {', '.join(values)}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (field {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (field {name!r})")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"

    def _asdict(self) -> dict[str, object]:
        """The fields as a new dict, in declaration order (for JSON output)."""
        return {name: getattr(self, name) for name in self._fields}

    def _replace(self, **changes: object) -> "Record":
        """A copy with some fields changed."""
        return type(self)(**{**self._asdict(), **changes})
