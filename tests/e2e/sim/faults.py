"""Injected failures: a rule per (host, path pattern) with a sequence of steps.

Each matching request consumes one step; once a rule's steps are used up it stops matching
and requests are served normally again. A step is one of:

- an int status, e.g. ``503``;
- a tuple ``(status, headers)`` or ``(status, headers, body)``,
  e.g. ``(429, {"Retry-After": "1"})``; a header value given as bytes is sent as it is
  (binary, non-UTF-8), a str one as Latin-1, or UTF-8 when Latin-1 cannot say it;
- ``"reset"``: the connection is closed with a TCP reset, nothing is answered;
- ``("stall", seconds)``: the answer is held back that long, then served normally;
- ``("drip", seconds)``: the answer is served normally, but its body goes out one byte every
  `seconds` (no read timeout ever fires); ``("drip", seconds, "all")`` drips the status line
  and headers too;
- ``"pass"``: this request is served normally (to fail, say, only the second one).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass, field

from . import world


@dataclass(frozen=True)
class Respond:
    status: int
    headers: dict[str, str | bytes] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Stall:
    seconds: float


@dataclass(frozen=True)
class Drip:
    seconds: float  # between two bytes
    whole: bool = False  # the status line and headers too, not only the body


@dataclass(frozen=True)
class Pass:
    pass


Step = Respond | Reset | Stall | Drip | Pass
StepSpec = int | str | tuple[object, ...]


def parse_step(spec: StepSpec) -> Step:
    if isinstance(spec, bool):
        raise TypeError(f"not a fault step: {spec!r}")
    if isinstance(spec, int):
        return Respond(spec)
    if spec == "reset":
        return Reset()
    if spec == "pass":
        return Pass()
    if isinstance(spec, tuple) and spec and spec[0] == "stall" and len(spec) == 2:
        seconds = spec[1]
        if not isinstance(seconds, (int, float)):
            raise TypeError(f"stall needs seconds: {spec!r}")
        return Stall(float(seconds))
    if isinstance(spec, tuple) and spec and spec[0] == "drip" and len(spec) in (2, 3):
        seconds = spec[1]
        if not isinstance(seconds, (int, float)) or (len(spec) == 3 and spec[2] != "all"):
            raise TypeError(f'drip needs seconds, then optionally "all": {spec!r}')
        return Drip(float(seconds), whole=len(spec) == 3)
    if isinstance(spec, tuple) and spec and isinstance(spec[0], int) and len(spec) in (2, 3):
        headers = spec[1]
        if not isinstance(headers, dict):
            raise TypeError(f"headers must be a dict: {spec!r}")
        body = spec[2] if len(spec) == 3 else b""
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, bytes):
            raise TypeError(f"body must be str or bytes: {spec!r}")
        return Respond(
            spec[0],
            {str(k): v if isinstance(v, bytes) else str(v) for k, v in headers.items()},
            body,
        )
    raise TypeError(f"not a fault step: {spec!r}")


@dataclass
class _Rule:
    host: str | None
    pattern: re.Pattern[str]
    steps: deque[Step]


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def add(self, host: str | None, path_regex: str, sequence: list[StepSpec]) -> None:
        """host None or "*" matches every host, IMDS included; path_regex is searched."""
        target = None if host in (None, "*") else str(host).lower()
        if target is not None and target not in world.HOSTNAMES and target != world.IMDS_ADDRESS:
            raise ValueError(f"{host!r} is not a simulated host")
        steps = deque(parse_step(s) for s in sequence)
        with self._lock:
            self._rules.append(_Rule(target, re.compile(path_regex), steps))

    def take(self, host: str, path_and_query: str) -> Step | None:
        with self._lock:
            for rule in self._rules:
                if (
                    rule.steps
                    and (rule.host is None or rule.host == host)
                    and rule.pattern.search(path_and_query)
                ):
                    return rule.steps.popleft()
        return None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
