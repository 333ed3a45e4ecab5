"""The benchmark: what the backend costs the clients that call it, as ratios against baselines
measured in the same run, on the simulated feed of the end-to-end suite.

    ./bench/run            (python -m tests.e2e.sim.netns -- python -m bench.lookups)
    ./bench/run --quick    (fewer repetitions: proves it runs, not how fast)

Prints a Markdown table (and writes it to bench/results.md unless --quick).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.helpers import build_wheelhouse, client_env_for
from tests.e2e.sim import world
from tests.e2e.sim.azcli import az_login
from tests.e2e.sim.netns import inside_namespace
from tests.e2e.sim.server import Simulator
from tests.e2e.sim.wheels import build_wheel

REPO = Path(__file__).resolve().parents[1]
OURS = REPO / ".e2e" / "tools" / "bin" / "keyring"
BARE = REPO / ".e2e" / "bare" / "bin" / "keyring"
UV = Path(sys.executable).parent / "uv"
FOREIGN = "https://pypi.org/simple/"
PACKAGES = 20


@dataclass
class Row:
    measure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None


def timed(
    cmd: Sequence[str], env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time of one process, as a client that runs it waits for it."""
    started = time.perf_counter()
    done = subprocess.run(
        list(cmd), env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
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


def median_of(runs: int, action: Callable[[], float]) -> float:
    return statistics.median(action() for _ in range(runs))


class Bench:
    def __init__(self, sim: Simulator, work: Path, quick: bool) -> None:
        self.sim = sim
        self.work = work
        self.runs = 5 if quick else 31
        self.installs = 1 if quick else 5
        self.rows: list[Row] = []
        self.homes = 0

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

    def add(self, measure: str, ours: float, base: float, unit: str, target: float | None,
            fmt: str = "{:.1f}") -> None:
        ratio = ours / base if base else float("inf")
        self.rows.append(
            Row(measure, f"{fmt.format(ours)} {unit}", f"{fmt.format(base)} {unit}",
                f"{ratio:.2f}x", f"<= {target}x" if target else "-",
                None if target is None else ratio <= target)
        )

    def count(self, measure: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
        shown = " / ".join(str(g) for g in got)
        self.rows.append(Row(measure, shown, "-", "-", " / ".join(map(str, want)), got == want))

    # --- the measures -----------------------------------------------------------------------

    def foreign_and_warm(self) -> None:
        env = self.env()
        foreign_cmd = ["get", FOREIGN, "someone"]
        # Interleaved, so that drift on the machine hits both sides alike.
        ours: list[float] = []
        bare: list[float] = []
        for _ in range(self.runs):
            ours.append(timed([str(OURS), *foreign_cmd], env)[0])
            bare.append(timed([str(BARE), *foreign_cmd], env)[0])
        floor = statistics.median(bare)
        self.add("`keyring get` of a foreign URL: with the backend vs keyring alone",
                 statistics.median(ours) * 1000, floor * 1000, "ms", 1.05)

        _, first = timed([str(OURS), "get", world.SHARED_INDEX, "VssSessionToken"], env)
        assert first.returncode == 0, first.stderr
        calls = self.az_calls(env)
        warm: list[float] = []
        floor_again: list[float] = []
        for _ in range(self.runs):
            elapsed, done = timed([str(OURS), "get", world.SHARED_INDEX, "VssSessionToken"], env)
            assert done.returncode == 0, done.stderr
            warm.append(elapsed)
            floor_again.append(timed([str(BARE), *foreign_cmd], env)[0])
        self.add("warm Azure lookup in a new process vs the foreign-URL floor",
                 statistics.median(warm) * 1000, statistics.median(floor_again) * 1000, "ms",
                 1.3)
        self.count("subprocesses (az) during the warm lookups", (self.az_calls(env) - calls,),
                   (0,))

    def counts(self) -> tuple[int, int, int]:
        return (self.sim.count("discovery"), self.sim.count("token"), self.sim.count("exchange"))

    def cold(self) -> None:
        env = self.env()  # az login's own token request happens here, before the count
        before = self.counts()
        done = timed([str(OURS), "get", world.SHARED_INDEX, "VssSessionToken"], env)[1]
        assert done.returncode == 0, done.stderr
        after = self.counts()
        self.count("cold lookup: discovery / token / exchange",
                   tuple(a - b for a, b in zip(after, before, strict=True)), (1, 1, 1))
        done = timed([str(OURS), "get", world.TEAM_INDEX, "VssSessionToken"], env)[1]
        assert done.returncode == 0, done.stderr
        final = self.counts()
        self.count("then a second feed of the same organisation: discovery / exchange",
                   (final[0] - after[0], final[2] - after[2]), (0, 0))

    def parallel(self) -> None:
        env = self.env()
        env["FAKE_AZ_DELAY"] = "0.5"
        before = self.sim.count("exchange")

        def one(_: int) -> int:
            done = timed([str(OURS), "get", world.SHARED_INDEX, "VssSessionToken"], env)[1]
            return done.returncode

        with ThreadPoolExecutor(max_workers=16) as pool:
            codes = list(pool.map(one, range(16)))
        assert codes == [0] * 16, codes
        self.count("16 parallel cold lookups of one organisation: exchanges",
                   (self.sim.count("exchange") - before,), (1,))

    def uv_install(self) -> None:
        house = self.work / "bench-wheels"
        names = [f"benchpkg{i:02d}" for i in range(PACKAGES)]
        self.sim.seed_packages([build_wheel(house, name, "1.0.0") for name in names])
        env = self.env()
        env["FAKE_AZ_DELAY"] = "0.5"  # the real az takes 0.5 to 2 s

        def install(index: str, label: str) -> float:
            target = self.work / f"target-{label}-{time.monotonic_ns()}"
            cmd = [str(UV), "pip", "install", "--no-cache", "--target", str(target),
                   "--keyring-provider", "subprocess", "--index-url", index, *names]
            elapsed, done = timed(cmd, env)
            assert done.returncode == 0, done.stderr
            return elapsed

        azure = world.SHARED_INDEX.replace("https://", "https://__token__@")
        first = install(azure, "first")
        second = median_of(self.installs, lambda: install(azure, "azure"))
        plain = median_of(self.installs, lambda: install(world.PLAIN_INDEX, "plain"))
        self.add(f"`uv pip install` of {PACKAGES} packages, first run (cold, az 0.5 s) vs a plain "
                 "index without auth", first, plain, "s", None, "{:.2f}")
        self.add(f"`uv pip install` of {PACKAGES} packages, second run vs a plain index "
                 "without auth", second, plain, "s", None, "{:.2f}")

    def memory(self) -> None:
        env = self.env()
        # The cold lookup's peak includes az, the child it waits for (a Python program too).
        cold_rss = peak_rss_kib([str(OURS), "get", world.SHARED_INDEX, "VssSessionToken"], env)
        warm_rss = peak_rss_kib([str(OURS), "get", world.SHARED_INDEX, "VssSessionToken"], env)
        bare_rss = peak_rss_kib([str(BARE), "get", FOREIGN, "someone"], env)
        self.add("peak memory of one cold lookup vs keyring alone", cold_rss / 1024,
                 bare_rss / 1024, "MiB", None)
        self.add("peak memory of one warm lookup vs keyring alone", warm_rss / 1024,
                 bare_rss / 1024, "MiB", None)

    def table(self) -> str:
        lines = [
            "| measure | ours | baseline | ratio | target | met |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            met = "-" if r.met is None else ("yes" if r.met else "**no**")
            lines.append(f"| {r.measure} | {r.ours} | {r.baseline} | {r.ratio} | {r.target} "
                         f"| {met} |")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run")
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke run")
    options = parser.parse_args(argv)
    if not inside_namespace():
        print("run me through ./bench/run (it makes the private network namespace)",
              file=sys.stderr)
        return 2
    for tool in (OURS, BARE, UV):
        if not tool.exists():
            print(f"{tool} is missing: run scripts/bootstrap", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="nofuss-bench-") as tmp:
        work = Path(tmp)
        with Simulator(work / "sim") as sim:
            sim.seed_packages(build_wheelhouse(work / "wheelhouse").wheels)
            bench = Bench(sim, work, options.quick)
            for measure in (bench.foreign_and_warm, bench.cold, bench.parallel,
                            bench.uv_install, bench.memory):
                measure()
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; medians of {bench.runs} runs "
        f"({bench.installs} for installs), on the simulated feed over loopback HTTPS."
    )
    report = f"{header}\n\n{bench.table()}\n"
    print(report)
    if not options.quick:
        (REPO / "bench" / "results.md").write_text(report)
    missed = [r.measure for r in bench.rows if r.met is False]
    if missed:
        print(f"targets missed: {len(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
