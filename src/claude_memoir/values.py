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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Self

_MISSING = object()


class Record:
    """Base of immutable value classes: fields are the class's annotations, in order.

    Construct by keyword (``Row(id=1, name="x")``) or position, in field order;
    fields without a class-level default are required, unknown keywords are
    errors, as with a dataclass.
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        own = tuple(cls.__dict__.get("__annotations__", {}))
        cls._fields = tuple(f for f in cls._fields if f not in own) + own

    def __init__(self, *args: object, **values: object) -> None:
        cls = type(self)
        if args:
            if len(args) > len(cls._fields):
                raise TypeError(f"{cls.__name__}() takes at most {len(cls._fields)} "
                                f"positional field(s), {len(args)} given")
            for name, value in zip(cls._fields, args, strict=False):
                if name in values:
                    raise TypeError(f"{cls.__name__}() got field {name!r} twice")
                values[name] = value
        for name in cls._fields:
            value = values.pop(name, _MISSING)
            if value is _MISSING:
                value = getattr(cls, name, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{cls.__name__}() missing required field {name!r}")
                if isinstance(value, (list, dict)):
                    # A mutable class-level default is copied per instance, as a
                    # dataclass's default_factory would: never shared between two.
                    value = value.copy()
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
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"

    def _asdict(self) -> dict[str, object]:
        """The fields as a new dict, in declaration order (for JSON output)."""
        return {name: getattr(self, name) for name in self._fields}

    def _replace(self, **changes: object) -> Self:
        """A copy with some fields changed."""
        return type(self)(**{**self._asdict(), **changes})
