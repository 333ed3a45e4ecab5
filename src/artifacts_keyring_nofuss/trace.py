"""What a lookup did, step by step, as data: each source asked and its outcome, the discovery,
the cache, the exchange, the check with the feed. The one failure line, the debug output and
`ak-nofuss doctor` are three renderings of the same trace, so they cannot tell different
stories.
"""

from __future__ import annotations

from typing import NamedTuple

from . import log as _log

# Outcomes.
APPLIED = "applied"  # it answered (a token, a cache hit, a discovery)
NOT_HERE = "not here"  # a source that is not set up on this machine
UNAVAILABLE = "unavailable"  # set up here, but cannot serve this feed
FAILED = "failed"  # it applied and failed
REFUSED = "refused"  # the token service or the feed refused its token
EXPIRED = "expired"  # its token had expired
SKIPPED = "skipped"  # not asked, and why
STOPPED = "stopped"  # a failure that ends the lookup: nothing later may paper over it
INFO = "info"  # something worth knowing on the way (a refused cached token, dropped)
FELL_BACK = "fell back"  # the organisation refused session tokens: the Entra token instead

# Stages.
SETTINGS = "settings"
DISCOVERY = "discovery"
SOURCE = "source"
CACHE = "cache"
EXCHANGE = "exchange"
PROBE = "probe"

_COUNTED = (UNAVAILABLE, FAILED, REFUSED, EXPIRED)


class Step(NamedTuple):
    stage: str
    name: str  # the source's name, or the stage's
    outcome: str
    what: str
    fix: str | None = None
    kind: str | None = None  # the kind of token, when one was produced
    who: str | None = None

    def sentence(self) -> str:
        return self.what if not self.fix else f"{self.what}; {self.fix}"


class Trace:
    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add(
        self,
        stage: str,
        name: str,
        outcome: str,
        what: str,
        fix: str | None = None,
        kind: str | None = None,
        who: str | None = None,
    ) -> Step:
        step = Step(stage, name, outcome, what, fix, kind, who)
        self.steps.append(step)
        _log.debug("%s", debug_line(step))
        return step

    def sources(self) -> list[Step]:
        return [s for s in self.steps if s.stage == SOURCE]

    def stopped(self) -> Step | None:
        return next((s for s in self.steps if s.outcome == STOPPED), None)

    def asked(self) -> list[str]:
        """The sources asked, in order, once each."""
        seen: list[str] = []
        for step in self.sources():
            if step.name not in seen:
                seen.append(step.name)
        return seen


_SOURCE_WORDS = {
    APPLIED: "applies",
    NOT_HERE: "does not apply",
    UNAVAILABLE: "does not apply",
}


def debug_line(step: Step) -> str:
    if step.stage == SOURCE:
        return f"{step.name}: {_SOURCE_WORDS.get(step.outcome, step.outcome)}: {step.sentence()}"
    head = step.stage if step.name == step.stage else f"{step.stage} ({step.name})"
    return f"{head}: {step.outcome}: {step.sentence()}"


def failure_line(trace: Trace, label: str, login_url: str) -> str:
    """The one line a user sees when a lookup gives nothing: what each source that is set up
    here said (the others are counted), or the one failure that stopped the lookup."""
    stop = trace.stopped()
    if stop is not None:
        head = "" if stop.stage in (SETTINGS, DISCOVERY) else f"{stop.name}: "
        return f"no credential for {label}: {head}{stop.sentence()}"
    discovery = next((s for s in trace.steps if s.stage == DISCOVERY and s.outcome == FAILED), None)
    parts = [
        f"{s.name}: {s.sentence()}"
        for s in trace.steps
        if s.stage in (SOURCE, EXCHANGE) and s.outcome in _COUNTED
    ]
    skipped = [s for s in trace.sources() if s.outcome == SKIPPED]
    not_here = [s for s in trace.sources() if s.outcome == NOT_HERE]
    if discovery is not None:
        parts.insert(0, discovery.sentence())
    if parts:
        said = "; ".join(parts)
        others = len(not_here)
        if others:
            said += f" ({others} other source{'s do' if others != 1 else ' does'} not apply here)"
    elif skipped:
        said = "; ".join(f"{s.name}: {s.sentence()}" for s in skipped[:1])
    else:
        said = (
            f"nothing on this machine can sign in (none of the {len(not_here)} identity sources "
            f"applies): run `az login`, or `ak-nofuss login {login_url}` without az; in CI, map "
            "SYSTEM_ACCESSTOKEN or use a workload identity"
        )
    return f"no credential for {label}: {said}. {_log.DEBUG_VAR}=1 shows each step"
