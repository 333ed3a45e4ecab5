"""The harness of the property-based tests: hypothesis profiles, each property's share of the
run, and the count of cases actually tried, which conftest prints at the end of the session.

Profiles (AKN_PROPERTIES, else HYPOTHESIS_PROFILE, else `ci`):

- `ci`: every submission. Derandomized, so a CI failure reproduces on any machine with the
  same code; a few thousand cases over the whole file, well under a minute on two cores.
- `long`: on demand (scripts/fuzz). Random, with the example database on, and at least
  100,000 cases over the whole file.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

PROFILE_VARS = ("AKN_PROPERTIES", "HYPOTHESIS_PROFILE")
# Examples per unit of weight. The weights in test_properties.py add up to 16: the `ci`
# profile tries about 4,800 cases, the `long` one about 120,000 (when every property passes: a
# failing one stops at its first counterexample, then shrinks it).
EXAMPLES_PER_WEIGHT = {"ci": 300, "long": 7_500}
LONG_RUN_MINIMUM = 100_000

_COMMON: dict[str, Any] = {
    "deadline": None,  # shared 2-core CI machines: a slow example is not a failure
    "suppress_health_check": [HealthCheck.too_slow],
    "print_blob": True,
    # Other test files' @given tests keep hypothesis' default; ours say what they need.
    "max_examples": 100,
}
settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("long", derandomize=False, **_COMMON)


def _profile_name() -> str:
    for var in PROFILE_VARS:
        name = os.environ.get(var, "").strip()
        if name:
            if name not in EXAMPLES_PER_WEIGHT:
                raise RuntimeError(
                    f"{var}={name!r}: the property tests know the profiles "
                    f"{', '.join(EXAMPLES_PER_WEIGHT)}"
                )
            return name
    return "ci"


PROFILE = _profile_name()
settings.load_profile(PROFILE)


def budget(weight: float, fixtures: bool = False) -> settings:
    """This property's share of the profile: `weight` units of EXAMPLES_PER_WEIGHT.

    `fixtures`: the test takes a function-scoped fixture and resets what it needs per example
    itself (hypothesis would otherwise refuse it).
    """
    default = settings.default
    assert default is not None
    suppressed = list(default.suppress_health_check)
    if fixtures:
        suppressed.append(HealthCheck.function_scoped_fixture)
    return settings(
        max_examples=max(1, round(EXAMPLES_PER_WEIGHT[PROFILE] * weight)),
        suppress_health_check=suppressed,
    )


@dataclass
class Stats:
    cases: Counter[str] = field(default_factory=Counter)
    escapes: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def summary(self) -> str:
        return (
            f"property tests: {self.total} cases tried across {len(self.cases)} properties "
            f"(profile {PROFILE}), escapes: {sum(self.escapes.values())}"
        )


STATS = Stats()
T = TypeVar("T")


class Property:
    """One property's counters: `tried()` at the top of the test body, then every call to the
    code under test through `call`, which counts what escapes the contract."""

    def __init__(self, name: str) -> None:
        self.name = name

    def tried(self) -> None:
        STATS.cases[self.name] += 1

    def call(
        self,
        function: Callable[..., T],
        *args: Any,
        allowed: tuple[type[BaseException], ...] = (),
        **kwargs: Any,
    ) -> tuple[T | None, BaseException | None]:
        """(result, None), or (None, the exception) when it is one of `allowed`. Anything else
        is an escape: counted, then raised for hypothesis to shrink and report."""
        try:
            return function(*args, **kwargs), None
        except allowed as exc:
            return None, exc
        except BaseException:
            STATS.escapes[self.name] += 1
            raise
