"""Progress of long steps, told to whoever listens: the CLI's rich bars, Prefect's logs."""

from __future__ import annotations

from typing import Protocol


class ProgressListener(Protocol):
    def start(self, stage: str, total: int, unit: str) -> None: ...

    def advance(self, stage: str, done: int) -> None: ...

    def finish(self, stage: str) -> None: ...

    # Optional: ``note(stage, text)``, a line of state beside the bar (the fan-out: calls in flight, retried).


class _Silent:
    def start(self, stage: str, total: int, unit: str) -> None:
        pass

    def advance(self, stage: str, done: int) -> None:
        pass

    def finish(self, stage: str) -> None:
        pass

    def note(self, stage: str, text: str) -> None:
        pass


_listener: ProgressListener = _Silent()


def set_listener(listener: ProgressListener | None) -> None:
    global _listener
    _listener = listener or _Silent()


def listener() -> ProgressListener:
    return _listener
