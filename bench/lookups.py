"""The benchmark: what the backend costs the clients that call it, as ratios against baselines
measured in the same run, on the simulated feed of the end-to-end suite, at each simulated
network latency (0 ms: the loopback as it is; 40 ms: a round trip to a nearby Azure region,
every new connection paying the TCP and the TLS handshake, every request one round trip).

    ./bench/run                 (python -m tests.e2e.sim.netns -- python -m bench.lookups)
    ./bench/run --quick         (fewer repetitions: proves it runs, not how fast)
    ./bench/run --rtt 0,40,100  (the round trips to measure at, in milliseconds)

Prints a Markdown table (and writes it to bench/results.md unless --quick).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.e2e.helpers import build_wheelhouse, client_env_for
from tests.e2e.sim import world
from tests.e2e.sim.azcli import AZ, az_login
from tests.e2e.sim.log import Record
from tests.e2e.sim.netns import inside_namespace
from tests.e2e.sim.server import Simulator
from tests.e2e.sim.wheels import build_wheel

REPO = Path(__file__).resolve().parents[1]
OURS = REPO / ".e2e" / "tools" / "bin" / "keyring"
BARE = REPO / ".e2e" / "bare" / "bin" / "keyring"
UV = Path(sys.executable).parent / "uv"
PIP = Path(sys.executable).parent / "pip"
PYTHON = Path(sys.executable).parent / "python"
FOREIGN = "https://pypi.org/simple/"
PACKAGES = 20
USER = "VssSessionToken"
AZ_DELAY = "0.5"  # seconds: the real az takes 0.5 to 2 s
# Not a documented form, measured to show what uv pays for the feed's files living outside
# the index URL: the same feed by its id, under which its download URLs are.
SHARED_GUID = next(f.guid for f in world.FEEDS if f.org == world.ORG_CONTOSO and f.name == "shared")
BY_ID = world.SHARED_INDEX.replace("/shared/", f"/{SHARED_GUID}/")
BY_ID_LABEL = '(not documented) the feed\'s id for its name, username and `authenticate = "always"`'


@dataclass
class Row:
    measure: str
    baseline: str
    cells: dict[int, str] = field(default_factory=dict)  # round trip (ms) -> figure
    targets: dict[str, bool] = field(default_factory=dict)  # what -> met (at every round trip)

    def check(self, what: str, met: bool) -> None:
        self.targets[what] = self.targets.get(what, True) and met


class Table:
    """Rows in the order first measured; a column per round trip."""

    def __init__(self, rtts: Sequence[int]) -> None:
        self.rtts = list(rtts)
        self.rows: dict[str, Row] = {}

    def row(self, measure: str, baseline: str) -> Row:
        return self.rows.setdefault(measure, Row(measure, baseline))

    def ratio(self, measure: str, baseline: str, rtt: int, ours: float, base: float,
              unit: str, target: float | None = None) -> None:
        ratio = ours / base if base else float("inf")
        shown = {"s": "{:.2f}", "MiB": "{:.1f}"}.get(unit, "{:.0f}")
        row = self.row(measure, baseline)
        row.cells[rtt] = f"{shown.format(ours)} / {shown.format(base)} {unit}: {ratio:.2f}x"
        if target is not None:
            row.check(f"<= {target}x at {rtt} ms", ratio <= target)

    def count(self, measure: str, rtt: int, got: tuple[int, ...], want: tuple[int, ...]) -> None:
        row = self.row(measure, "-")
        row.cells[rtt] = " / ".join(map(str, got))
        row.check(" / ".join(map(str, want)), got == want)

    def text(self, measure: str, baseline: str, rtt: int, text: str) -> None:
        self.row(measure, baseline).cells[rtt] = text

    def missed(self) -> list[str]:
        return [r.measure for r in self.rows.values() if not all(r.targets.values())]

    def markdown(self) -> str:
        head = ["measure", "baseline", *(f"{rtt} ms round trip" for rtt in self.rtts), "target"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows.values():
            cells = [r.cells.get(rtt, "-") for rtt in self.rtts]
            target = "; ".join(
                f"{what}: {'yes' if met else '**no**'}" for what, met in r.targets.items()
            )
            lines.append("| " + " | ".join([r.measure, r.baseline, *cells, target or "-"]) + " |")
        return "\n".join(lines)


def timed(
    cmd: Sequence[str], env: Mapping[str, str], cwd: Path | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time of one process, as a client that runs it waits for it."""
    started = time.perf_counter()
    done = subprocess.run(
        list(cmd), env=dict(env), cwd=cwd, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, check=False, timeout=600,
    )
    return time.perf_counter() - started, done


# A child spawned straight from this (large) process starts its RSS high-water mark at ours:
# Linux keeps the pre-exec peak across exec. A small launcher in between keeps figures honest.
_RSS_LAUNCHER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n"
)


def peak_rss_kib(cmd: Sequence[str], env: dict[str, str]) -> int:
    done = subprocess.run(
        ["/usr/bin/env", "python3", "-I", "-S", "-c", _RSS_LAUNCHER, *cmd],
        env=env, capture_output=True, text=True, check=True,
    )
    rss, code = (int(x) for x in done.stdout.split())
    assert code in (0, 1), done
    return rss


# Anonymous HEADs of the feed index, each on a new connection, each timed from connect() to the
# answer; one line of seconds each.
_ONE_REQUEST = (
    "import http.client, ssl, sys, time\n"
    "context = ssl.create_default_context(cafile=sys.argv[1])\n"
    "for _ in range(int(sys.argv[4])):\n"
    "    started = time.perf_counter()\n"
    "    conn = http.client.HTTPSConnection(sys.argv[2], 443, context=context, timeout=30)\n"
    "    conn.request('HEAD', sys.argv[3])\n"
    "    conn.getresponse().read()\n"
    "    conn.close()\n"
    "    print(time.perf_counter() - started)\n"
)


def median_of(runs: int, action: Callable[[], float]) -> float:
    return statistics.median(action() for _ in range(runs))


def took(record: Record) -> float:
    """A request on a new connection as its client waited for it: connect() to the answer."""
    return record.time - record.connected_at


def failure(done: subprocess.CompletedProcess[str]) -> str:
    """The line of a failed client run that says why, short enough for a table cell."""
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    reason = next((ln for ln in reversed(lines) if "401" in ln or "error" in ln.lower()),
                  lines[-1] if lines else f"exit {done.returncode}")
    if "401" in reason:
        reason = "401 Unauthorized"
    return f"fails ({reason[:60]})"


@dataclass
class Form:
    """One way to configure a client for the feed; `fails` says why a run failed."""

    label: str
    run: Callable[[], tuple[float, subprocess.CompletedProcess[str]]]
    times: list[float] = field(default_factory=list)
    fails: str | None = None
    # Per run: what the simulated services saw, and how much of it they refused with 401.
    sent: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)

    def once(self) -> bool:
        if self.fails is not None:
            return False
        elapsed, done = self.run()
        if done.returncode != 0:
            self.fails = failure(done)
            return False
        self.times.append(elapsed)
        return True

    def requests(self) -> str:
        if not self.sent:
            return "-"
        return f"{statistics.median(self.refused):.0f}/{statistics.median(self.sent):.0f}"


class Bench:
    def __init__(self, sim: Simulator, work: Path, quick: bool, rtts: Sequence[int]) -> None:
        self.sim = sim
        self.work = work
        self.runs = 5 if quick else 31
        self.installs = 1 if quick else 5
        self.colds = 2 if quick else 7
        self.table = Table(rtts)
        self.homes = 0
        self.names = [f"benchpkg{i:02d}" for i in range(PACKAGES)]
        self.floors: dict[int, float] = {}  # foreign-URL floor per round trip, seconds
        self.requests: dict[int, float] = {}  # one request on a new connection, seconds

    def env(self, signed_in: bool = True) -> dict[str, str]:
        """A fresh user: own HOME, caches and az state."""
        self.homes += 1
        env = client_env_for(self.work / f"user{self.homes}", self.sim.ca_pem)
        env["FAKE_AZ_CALLS"] = str(self.work / f"user{self.homes}" / "az-calls")
        if signed_in:
            az_login(env, world.ALICE)
        return env

    def az_calls(self, env: dict[str, str]) -> int:
        path = Path(env["FAKE_AZ_CALLS"])
        return len(path.read_text().splitlines()) if path.exists() else 0

    def log_mark(self) -> int:
        return len(self.sim.requests())

    def since(self, mark: int) -> list[Record]:
        return self.sim.requests()[mark:]

    def lookup(self, env: dict[str, str], url: str = world.SHARED_INDEX
               ) -> tuple[float, float, list[Record]]:
        """A `keyring get` in a new process: (started, ended) on the log's clock, and what the
        simulated services saw meanwhile."""
        mark = self.log_mark()
        started = time.time()
        _, done = timed([str(OURS), "get", url, USER], env)
        ended = time.time()
        assert done.returncode == 0, done.stderr
        return started, ended, self.since(mark)

    # --- the measures -----------------------------------------------------------------------

    def request_floor(self, rtt: int) -> None:
        """One HTTPS request on a new connection from a Python process already running: the
        network's price for a request, which no client can go below. A process of its own: in
        this one, the simulator's threads would share the interpreter lock with it."""
        done = subprocess.run(
            [str(PYTHON), "-I", "-c", _ONE_REQUEST, str(self.sim.ca_pem), world.FEED_HOST,
             urlsplit(world.SHARED_INDEX).path, str(self.runs)],
            capture_output=True, text=True, check=True, timeout=600,
        )
        self.requests[rtt] = statistics.median(float(x) for x in done.stdout.split())

    def foreign(self, rtt: int) -> None:
        """What every `keyring` process pays for the backend being installed (no network)."""
        env = self.env()
        cmd = ["get", FOREIGN, "someone"]
        # Interleaved, so that drift on the machine hits both sides alike.
        ours: list[float] = []
        bare: list[float] = []
        for _ in range(self.runs):
            ours.append(timed([str(OURS), *cmd], env)[0])
            bare.append(timed([str(BARE), *cmd], env)[0])
        self.table.ratio("`keyring get` of a foreign URL, with the backend", "keyring alone",
                         rtt, statistics.median(ours) * 1000, statistics.median(bare) * 1000,
                         "ms", 1.05)

    def warm(self, rtt: int) -> None:
        env = self.env()
        self.lookup(env)  # the cold one, which fills the cache
        calls = self.az_calls(env)
        totals: list[float] = []
        floor: list[float] = []
        before: list[float] = []
        checks: list[float] = []
        shape: set[tuple[int, int]] = set()
        for _ in range(self.runs):
            started, ended, seen = self.lookup(env)
            totals.append(ended - started)
            floor.append(timed([str(BARE), "get", FOREIGN, "someone"], env)[0])
            shape.add((len(seen), len({r.connection for r in seen})))
            if seen:
                before.append(seen[0].connected_at - started)
                checks.append(took(seen[0]))
        total, base = statistics.median(totals), statistics.median(floor)
        self.floors[rtt] = base
        self.table.ratio("warm Azure lookup in a new process", "the foreign-URL floor (keyring "
                         "alone)", rtt, total * 1000, base * 1000, "ms", 1.15 if rtt == 0 else None)
        got = shape.pop() if len(shape) == 1 else (-1, -1)
        self.table.count("requests / connections of one warm lookup (the check: one "
                         "authenticated HEAD of the feed index)", rtt, got, (1, 1))
        if not checks:
            return
        check = statistics.median(checks)
        self.table.ratio("the warm-path check, connect() to answer", "one HTTPS request on a "
                         "new connection, from a running process", rtt, check * 1000,
                         self.requests[rtt] * 1000, "ms",
                         1.25 if rtt == max(self.table.rtts) and rtt > 0 else None)
        self.table.ratio("the warm-path check's share of the warm lookup", "the warm lookup",
                         rtt, check * 1000, total * 1000, "ms")
        self.table.ratio("warm lookup, start until the check connects (imports, cache read)",
                         "the foreign-URL floor", rtt, statistics.median(before) * 1000,
                         base * 1000, "ms")
        self.table.count("subprocesses (az) during the warm lookups", rtt,
                         (self.az_calls(env) - calls,), (0,))

    def warm_policy(self, rtt: int) -> None:
        """A warm lookup where the organisation refuses session tokens (PAT creation
        restricted): the user's Entra token, which we never write, from az's own token cache."""
        self.sim.restrict_pat_creation("contoso")
        try:
            env = self.env()
            self.lookup(env)  # the cold one: refused once, remembered
            calls, exchanges = self.az_calls(env), self.sim.count("exchange")
            totals: list[float] = []
            floor: list[float] = []
            for _ in range(self.runs):
                started, ended, _ = self.lookup(env)
                totals.append(ended - started)
                floor.append(timed([str(BARE), "get", FOREIGN, "someone"], env)[0])
            self.table.ratio("warm lookup where the organisation refuses session tokens (Entra "
                             "token from az's own cache)", "the foreign-URL floor", rtt,
                             statistics.median(totals) * 1000, statistics.median(floor) * 1000,
                             "ms", 1.3 if rtt == 0 else None)
            self.table.count("az runs / exchanges during those warm lookups", rtt,
                             (self.az_calls(env) - calls,
                              self.sim.count("exchange") - exchanges), (0, 0))
        finally:
            self.sim.restrict_pat_creation("contoso", enabled=False)

    def cold(self, rtt: int) -> None:
        """A cold lookup (nothing cached, az signed in) split at the requests the simulated
        services saw: start, discovery, az, exchange, hand-over."""
        parts: dict[str, list[float]] = {k: [] for k in
                                         ("total", "start", "discovery", "az", "exchange", "end")}
        kinds: set[tuple[int, int, int]] = set()
        env = self.env()
        for _ in range(self.colds):
            env = self.env()  # az login's own token request happens here, before the mark
            env["FAKE_AZ_DELAY"] = AZ_DELAY
            started, ended, seen = self.lookup(env)
            found = {k: [r for r in seen if r.kind == k] for k in ("discovery", "token",
                                                                    "exchange")}
            kinds.add((len(found["discovery"]), len(found["token"]), len(found["exchange"])))
            if any(len(v) != 1 for v in found.values()):
                continue
            discovery, exchange = found["discovery"][0], found["exchange"][0]
            parts["total"].append(ended - started)
            parts["start"].append(discovery.connected_at - started)
            parts["discovery"].append(took(discovery))
            parts["az"].append(exchange.connected_at - discovery.time)
            parts["exchange"].append(took(exchange))
            parts["end"].append(ended - exchange.time)
        got = kinds.pop() if len(kinds) == 1 else (-1, -1, -1)
        self.table.count("cold lookup: discovery / token / exchange", rtt, got, (1, 1, 1))
        if not parts["total"]:
            return
        az_alone = median_of(self.colds, lambda: self.az_alone(env))
        ms = {k: statistics.median(v) * 1000 for k, v in parts.items()}
        floor, request = self.floors[rtt] * 1000, self.requests[rtt] * 1000
        self.table.ratio(f"cold lookup in a new process (az {AZ_DELAY} s)",
                         "the foreign-URL floor", rtt, ms["total"], floor, "ms")
        self.table.ratio("cold: start until discovery connects", "the foreign-URL floor", rtt,
                         ms["start"], floor, "ms")
        self.table.ratio("cold: discovery (anonymous GET), connect() to answer",
                         "one HTTPS request on a new connection", rtt, ms["discovery"],
                         request, "ms")
        self.table.ratio("cold: az (discovery answered until the exchange connects)",
                         "`az account get-access-token` alone", rtt, ms["az"], az_alone * 1000,
                         "ms")
        self.table.ratio("cold: exchange (POST SessionTokens), connect() to answer",
                         "one HTTPS request on a new connection", rtt, ms["exchange"], request,
                         "ms")
        self.table.ratio("cold: exchange answered until the credential is out (cache, exit)",
                         "the cold lookup", rtt, ms["end"], ms["total"], "ms")

    def az_alone(self, env: dict[str, str]) -> float:
        elapsed, done = timed([str(AZ), "account", "get-access-token", "--resource",
                               world.DEVOPS_RESOURCE, "--tenant", world.T_CONTOSO, "--output",
                               "json"], env)
        assert done.returncode == 0, done.stderr
        return elapsed

    def second_feed(self, rtt: int) -> None:
        env = self.env()
        self.lookup(env)
        _, _, seen = self.lookup(env, world.TEAM_INDEX)
        kinds = [r.kind for r in seen]
        self.table.count("then a second feed of the same organisation: discovery / exchange",
                         rtt, (kinds.count("discovery"), kinds.count("exchange")), (0, 0))

    def parallel(self, rtt: int) -> None:
        env = self.env()
        env["FAKE_AZ_DELAY"] = AZ_DELAY
        mark = self.log_mark()

        def one(_: int) -> int:
            done = timed([str(OURS), "get", world.SHARED_INDEX, USER], env)[1]
            return done.returncode

        with ThreadPoolExecutor(max_workers=16) as pool:
            codes = list(pool.map(one, range(16)))
        assert codes == [0] * 16, codes
        exchanges = sum(1 for r in self.since(mark) if r.kind == "exchange")
        self.table.count("16 parallel cold lookups of one organisation: exchanges", rtt,
                         (exchanges,), (1,))

    def memory(self, rtt: int) -> None:
        env = self.env()
        # The cold lookup's peak includes az, the child it waits for (a Python program too).
        cold_rss = peak_rss_kib([str(OURS), "get", world.SHARED_INDEX, USER], env)
        warm_rss = peak_rss_kib([str(OURS), "get", world.SHARED_INDEX, USER], env)
        bare_rss = peak_rss_kib([str(BARE), "get", FOREIGN, "someone"], env)
        self.table.ratio("peak memory of one cold lookup", "keyring alone", rtt,
                         cold_rss / 1024, bare_rss / 1024, "MiB")
        self.table.ratio("peak memory of one warm lookup", "keyring alone", rtt,
                         warm_rss / 1024, bare_rss / 1024, "MiB")

    # --- installs: each configuration we document against the token pasted in -------------

    def seed(self) -> None:
        house = self.work / "bench-wheels"
        self.sim.seed_packages([build_wheel(house, name, "1.0.0") for name in self.names])

    def token(self, env: dict[str, str]) -> str:
        """The session token the backend hands out (and caches) for this user."""
        _, done = timed([str(OURS), "get", world.SHARED_INDEX, USER], env)
        assert done.returncode == 0 and done.stdout.strip(), done.stderr
        return done.stdout.strip()

    def target(self, label: str) -> str:
        return str(self.work / f"target-{label}-{time.monotonic_ns()}")

    def uv_config(self, label: str, url: str, extra: str = "") -> str:
        path = self.work / f"uv-{label}.toml"
        path.write_text(f'keyring-provider = "subprocess"\n\n[[index]]\nname = "azure"\n'
                        f'url = "{url}"\ndefault = true\n{extra}')
        return str(path)

    def compare(self, forms: list[Form], baseline: Form, what: str, base_label: str,
                rtt: int, runs: int, counts: bool = True) -> None:
        # Round robin, so that drift on the machine hits every form alike.
        for _ in range(runs):
            for form in (baseline, *forms):
                mark = self.log_mark()
                if form.once():
                    seen = self.since(mark)
                    form.sent.append(len(seen))
                    form.refused.append(sum(1 for r in seen if r.status == 401))
        if baseline.fails is not None:
            raise RuntimeError(f"{what}, {baseline.label}: {baseline.fails}")
        base = statistics.median(baseline.times)
        for form in forms:
            measure = f"{what}, {form.label}"
            if form.fails is not None:
                self.table.text(measure, base_label, rtt, form.fails)
            else:
                self.table.ratio(measure, base_label, rtt, statistics.median(form.times), base,
                                 "s")
        if counts:
            # What latency multiplies: requests, and the ones refused only to be sent again.
            self.table.text(f"{what}: requests refused with 401 / sent, per run",
                            "the baseline, then each form above, in order", rtt,
                            " · ".join(f.requests() for f in (baseline, *forms)))

    def uv_install(self, rtt: int) -> None:
        env = self.env()
        env["FAKE_AZ_DELAY"] = AZ_DELAY
        user = world.SHARED_INDEX.replace("https://", f"https://{USER}@")

        def install(label: str, *options: str, extra_env: Mapping[str, str] | None = None
                    ) -> Callable[[], tuple[float, subprocess.CompletedProcess[str]]]:
            def go() -> tuple[float, subprocess.CompletedProcess[str]]:
                cmd = [str(UV), "pip", "install", "--no-cache", "--target", self.target(label),
                       *options, *self.names]
                return timed(cmd, {**env, **(extra_env or {})})
            return go

        first = Form("first run: username in the URL, cold (discovery, az, exchange)",
                     install("first", "--keyring-provider", "subprocess", "--index-url", user))
        first.once()  # before anything is cached
        token = self.token(env)
        pasted = Form("the session token pasted into the URL", install(
            "pasted", "--keyring-provider", "disabled", "--index-url",
            world.SHARED_INDEX.replace("https://", f"https://{USER}:{token}@")))
        forms = [
            Form("username in the URL (`https://VssSessionToken@…`)", install(
                "user", "--keyring-provider", "subprocess", "--index-url", user)),
            Form('no username, `authenticate = "always"`', install(
                "always", "--config-file", self.uv_config(
                    "always", world.SHARED_INDEX, 'authenticate = "always"\n'))),
            Form("`UV_INDEX_AZURE_USERNAME=VssSessionToken`", install(
                "env", "--config-file", self.uv_config("env", world.SHARED_INDEX),
                extra_env={"UV_INDEX_AZURE_USERNAME": USER})),
            Form(BY_ID_LABEL, install("id", "--config-file", self.uv_config(
                "id", BY_ID.replace("https://", f"https://{USER}@"), 'authenticate = "always"\n'))),
        ]
        what = f"`uv pip install` of {PACKAGES} packages"
        self.compare(forms, pasted, f"{what}, warm", "the same install, the session token "
                     "pasted into the URL (no keyring)", rtt, self.installs)
        if first.fails is not None:
            raise RuntimeError(f"{what}, {first.label}: {first.fails}")
        self.table.ratio(f"{what}, {first.label}", "the same install, the session token pasted "
                         "into the URL (no keyring)", rtt, first.times[0],
                         statistics.median(pasted.times), "s")
        plain = Form("a plain index", install("plain", "--index-url", world.PLAIN_INDEX))
        self.compare([pasted], plain, what, "the same from a plain index without auth", rtt,
                     self.installs, counts=False)

    def pip_install(self, rtt: int) -> None:
        env = self.env()
        token = self.token(env)
        user = world.SHARED_INDEX.replace("https://", f"https://{USER}@")

        def install(label: str, provider: str, index: str
                    ) -> Callable[[], tuple[float, subprocess.CompletedProcess[str]]]:
            def go() -> tuple[float, subprocess.CompletedProcess[str]]:
                return timed([str(PIP), "install", "--no-cache-dir", "--no-deps", "--target",
                              self.target(label), "--keyring-provider", provider,
                              "--index-url", index, *self.names], env)
            return go

        pasted = Form("pasted", install("pasted", "disabled", world.SHARED_INDEX.replace(
            "https://", f"https://{USER}:{token}@")))
        forms = [
            Form("keyring in pip's environment (`import`), no username",
                 install("import", "import", world.SHARED_INDEX)),
            Form("`keyring` on PATH (`subprocess`), username in the URL",
                 install("subprocess", "subprocess", user)),
        ]
        self.compare(forms, pasted, f"`pip install` of {PACKAGES} packages, warm",
                     "the same install, the session token pasted into the URL (no keyring)",
                     rtt, max(1, self.installs - 2))

    def uv_sync(self, rtt: int) -> None:
        """`uv sync --frozen` from a uv.lock that lists the feed's download URLs, into a new
        environment with an empty uv cache: a teammate's first sync, a CI job."""
        env = self.env()
        env.pop("UV_NO_CONFIG")  # the project's pyproject.toml is the configuration
        token = self.token(env)
        user = world.SHARED_INDEX.replace("https://", f"https://{USER}@")
        lock = self.lock_file(env, user)

        def sync(label: str, index: str, extra: str = "",
                 extra_env: Mapping[str, str] | None = None
                 ) -> Callable[[], tuple[float, subprocess.CompletedProcess[str]]]:
            project = self.project(self.work / f"sync-{rtt}-{label}", index, extra)
            (project / "uv.lock").write_text(lock)

            def go() -> tuple[float, subprocess.CompletedProcess[str]]:
                shutil.rmtree(project / ".venv", ignore_errors=True)
                cache = self.work / f"uv-cache-{label}-{time.monotonic_ns()}"
                return timed([str(UV), "sync", "--frozen", "--python", str(PYTHON)],
                             {**env, **(extra_env or {}), "UV_CACHE_DIR": str(cache)},
                             cwd=project)
            return go

        pasted = Form("pasted", sync("pasted", world.SHARED_INDEX, extra_env={
            "UV_INDEX_AZURE_USERNAME": USER, "UV_INDEX_AZURE_PASSWORD": token,
            "UV_KEYRING_PROVIDER": "disabled"}))
        forms = [
            Form("username in the URL", sync("user", user)),
            Form('no username, `authenticate = "always"`',
                 sync("always", world.SHARED_INDEX, 'authenticate = "always"\n')),
            Form("`UV_INDEX_AZURE_USERNAME=VssSessionToken`",
                 sync("env", world.SHARED_INDEX, extra_env={"UV_INDEX_AZURE_USERNAME": USER})),
            Form(BY_ID_LABEL, sync("id", BY_ID.replace("https://", f"https://{USER}@"),
                                   'authenticate = "always"\n')),
        ]
        self.compare(forms, pasted, f"`uv sync --frozen` of {PACKAGES} packages, empty uv cache",
                     "the same sync, the session token in `UV_INDEX_AZURE_PASSWORD` (no "
                     "keyring)", rtt, self.installs)

    def project(self, root: Path, index: str, extra: str = "") -> Path:
        root.mkdir(parents=True, exist_ok=True)
        deps = ", ".join(f'"{name}"' for name in self.names)
        (root / "pyproject.toml").write_text(
            f'[project]\nname = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.10"\n'
            f"dependencies = [{deps}]\n\n[tool.uv]\npackage = false\n"
            f'keyring-provider = "subprocess"\n\n[[tool.uv.index]]\nname = "azure"\n'
            f'url = "{index}"\ndefault = true\n{extra}'
        )
        return root

    def lock_file(self, env: dict[str, str], index: str) -> str:
        project = self.project(self.work / f"lock-{time.monotonic_ns()}", index)
        _, done = timed([str(UV), "lock", "--python", str(PYTHON)], env, cwd=project)
        assert done.returncode == 0, done.stderr
        lock = (project / "uv.lock").read_text()
        assert "/pypi/download/" in lock, "the lock should list the feed's download URLs"
        return lock


# What runs at which round trips: what involves no network, or only counts, once.
NETWORK = ("request_floor", "warm", "warm_policy", "cold", "uv_install", "pip_install", "uv_sync")
ONCE = ("foreign", "second_feed", "parallel", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run")
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke run")
    parser.add_argument("--rtt", default="0,40", help="round trips to measure at, in "
                        "milliseconds, comma-separated (default 0,40)")
    options = parser.parse_args(argv)
    try:
        rtts = sorted({int(x) for x in options.rtt.split(",") if x.strip()})
    except ValueError:
        rtts = []
    if not rtts or not all(0 <= r <= 1000 for r in rtts):
        print(f"--rtt {options.rtt}: want milliseconds, 0 to 1000, e.g. 0,40",
              file=sys.stderr)
        return 2
    if not inside_namespace():
        print("run me through ./bench/run (it makes the private network namespace)",
              file=sys.stderr)
        return 2
    for tool in (OURS, BARE, UV, PIP):
        if not tool.exists():
            print(f"{tool} is missing: run scripts/bootstrap", file=sys.stderr)
            return 2
    load_before = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nofuss-bench-") as tmp:
        work = Path(tmp)
        with Simulator(work / "sim") as sim:
            sim.seed_packages(build_wheelhouse(work / "wheelhouse").wheels)
            bench = Bench(sim, work, options.quick, rtts)
            bench.seed()
            for rtt in rtts:
                sim.set_latency(rtt / 1000)
                for name in (*ONCE, *NETWORK) if rtt == rtts[0] else NETWORK:
                    getattr(bench, name)(rtt)
    minutes = (time.monotonic() - started) / 60
    load = ", ".join(f"{a:.1f}" for a in (*load_before, *os.getloadavg()))
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} "
        f"cores, Python {platform.python_version()}, load average {load} (1, 5, 15 min, before "
        f"and after), {minutes:.1f} min; medians of {bench.runs} runs ({bench.installs} for uv "
        f"installs and syncs, {max(1, bench.installs - 2)} for pip, {bench.colds} cold "
        "lookups), on the simulated feed over loopback HTTPS. A round trip of N ms: every new "
        "connection to the simulated Azure DevOps, Entra ID and plain index waits 2 N ms (TCP "
        "and TLS handshakes), every request N ms more; `a / b: r` is ours / baseline: ratio."
    )
    report = f"{header}\n\n{bench.table.markdown()}\n"
    print(report)
    if not options.quick:
        (REPO / "bench" / "results.md").write_text(report)
    missed = bench.table.missed()
    if missed:
        print(f"targets missed: {len(missed)}: {'; '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
