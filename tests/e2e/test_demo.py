"""The README's first command: the demo runs every step as expected.

It makes a namespace of its own (nested in the suite's), so its simulator does not collide with
the suite's on port 443.
"""

from __future__ import annotations

import os
import sys

from .helpers import run
from .scenarios import REPO


def test_the_demo_runs_every_step_as_expected() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AKN_E2E_NETNS"}
    done = run(
        [sys.executable, "-m", "tests.e2e.sim.netns", "--", sys.executable, "-m", "tests.e2e.demo"],
        env,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Every step went as expected." in done.stdout
    assert "scope=vso.packaging_write" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
