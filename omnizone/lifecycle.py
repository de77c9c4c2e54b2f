"""``with part:`` for every part that starts and stops: one definition of the context manager.

Brokers, the server runtime, the chain's PostgreSQL and processes, the
simulated UHF reader: each has ``start`` and a way out (``close`` or
``stop``); a ``with`` block must run the way out even when its body fails.
Standard library only, so every part may use it."""

from types import TracebackType
from typing import Self


class Started:
    """``with x:`` calls ``x.start()`` and, on the way out, ``x.close()``
    (which is ``x.stop()`` unless the part also removes what it made)."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()
