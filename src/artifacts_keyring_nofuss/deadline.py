"""One lookup, one clock: every request, retry and subprocess fits inside the same deadline, so
a flaky or hostile network can slow an install down but never hang it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import NofussError
from .settings import DEADLINE_VAR

T = TypeVar("T")


class DeadlineExceeded(NofussError):
    """The lookup ran out of time; the message says what was going on and what to change."""


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def extend(self, seconds: float) -> None:
        """Allow at least `seconds` from now: a person at a sign-in prompt is not a hung
        network, and the exchange after it deserves its own budget."""
        self._end = max(self._end, time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0

    def exceeded(self, doing: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{doing} did not finish within the lookup's {self.seconds:g} s",
            f"raise {DEADLINE_VAR} if the network is just slow",
        )

    def run(self, doing: str, work: Callable[[], T]) -> T:
        """Run `work` on a worker thread and stop waiting for it when the deadline passes.

        Sockets and libraries time out per read, not per answer: a server that drips one byte
        a second, or a credential library that retries for a minute, would otherwise outlive
        any per-call timeout. An abandoned worker is a daemon thread; the result is dropped.
        """
        if self.expired():
            raise self.exceeded(doing)
        outcome: list[T] = []
        failure: list[BaseException] = []

        def target() -> None:
            try:
                outcome.append(work())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                failure.append(exc)

        worker = threading.Thread(target=target, name="nofuss-lookup", daemon=True)
        worker.start()
        # The work may extend the deadline while it runs (a person at a sign-in prompt): wait
        # for the end as it stands, not as it stood when the work began.
        while worker.is_alive() and not self.expired():
            worker.join(self.remaining())
        if worker.is_alive():
            raise self.exceeded(doing)
        if failure:
            raise failure[0]
        return outcome[0]
