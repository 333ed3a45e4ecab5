"""The benchmark runs (in a namespace of its own) and its counts hold. Its timings are not
asserted here: they are figures for bench/results.md, not pass/fail conditions for a test."""

from __future__ import annotations

import os
import sys

from .helpers import run
from .scenarios import REPO

COUNT_ROWS = (
    "| subprocesses (az) during the warm lookups | 0 |",
    "| cold lookup: discovery / token / exchange | 1 / 1 / 1 |",
    "| then a second feed of the same organisation: discovery / exchange | 0 / 0 |",
    "| 16 parallel cold lookups of one organisation: exchanges | 1 |",
)


def test_the_benchmark_runs_and_its_counts_hold() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AKN_E2E_NETNS"}
    done = run(
        [
            sys.executable,
            "-m",
            "tests.e2e.sim.netns",
            "--",
            sys.executable,
            "-m",
            "bench.lookups",
            "--quick",
        ],
        env,
        timeout=600,
        cwd=REPO,
    )
    assert "| measure | ours | baseline | ratio | target | met |" in done.stdout, done.stderr
    for row in COUNT_ROWS:
        assert row in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
