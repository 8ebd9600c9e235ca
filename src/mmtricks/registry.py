"""One small registry class, used for every extension point (encoders, fusions, metrics)."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import ConfigError, one_of

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> factory, filled by the ``@registry.register("name")`` decorator."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            if isinstance(obj, type):
                obj.registry_name = name  # lets an instance say how to rebuild itself
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(one_of(self.kind, name, self._items))
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
