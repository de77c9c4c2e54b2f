"""All-or-nothing writes for the in-memory stores.

A transaction changes the stores' dicts and lists as it goes and records how
to put each change back; if a later write fails, the changes are undone in
reverse order, so a failed transaction leaves nothing behind (as a rolled
back database transaction does).
"""

from collections.abc import Callable, MutableMapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Undo:
    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def set(self, mapping: MutableMapping[K, V], key: K, value: V) -> None:
        if key in mapping:
            before = mapping[key]
            self._steps.append(lambda: mapping.__setitem__(key, before))
        else:
            self._steps.append(lambda: _forget(mapping, key))
        mapping[key] = value

    def delete(self, mapping: MutableMapping[K, V], key: K) -> None:
        if key not in mapping:
            return
        before = mapping.pop(key)
        self._steps.append(lambda: mapping.__setitem__(key, before))

    def append(self, items: list[V], value: V) -> None:
        items.append(value)
        self._steps.append(lambda: _drop_last(items))

    def replace(self, items: list[V], index: int, value: V) -> None:
        before = items[index]
        items[index] = value
        self._steps.append(lambda: items.__setitem__(index, before))

    def rollback(self) -> None:
        while self._steps:
            self._steps.pop()()


def _forget(mapping: MutableMapping[K, V], key: K) -> None:
    mapping.pop(key, None)


def _drop_last(items: list[V]) -> None:
    items.pop()
