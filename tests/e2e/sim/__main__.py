"""Run the simulator in the foreground, for the demo and the benchmark.

    python -m tests.e2e.sim.netns -- python -m tests.e2e.sim --state-dir DIR \\
        [--ready-file FILE] [--managed-identity] -- [CMD ARGS...]

Inside the namespace: starts the simulator with the standard wheelhouse in every feed. With a
command after `--`, runs it (with SSL_CERT_FILE, REQUESTS_CA_BUNDLE and PIP_CERT pointing at the
CA) and exits with its status; without one, serves until SIGINT or SIGTERM. The ready file
receives JSON with the CA path once the services answer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .netns import inside_namespace
from .server import Simulator
from .wheels import build_wheelhouse


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args:
        at = args.index("--")
        args, command = args[:at], args[at + 1 :]
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.sim")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--managed-identity", action="store_true")
    options = parser.parse_args(args)
    if not inside_namespace():
        print("run me inside the namespace: python -m tests.e2e.sim.netns -- ...", file=sys.stderr)
        return 2
    with Simulator(options.state_dir) as sim:
        house = build_wheelhouse(options.state_dir / "wheelhouse")
        sim.seed_packages(house.wheels)
        if options.managed_identity:
            sim.enable_managed_identity()
        if options.ready_file is not None:
            options.ready_file.write_text(
                json.dumps({"ca": str(sim.ca_pem), "wheelhouse": str(house.directory)})
            )
        if command:
            ca = str(sim.ca_pem)
            env = {**os.environ, "SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca, "PIP_CERT": ca}
            return subprocess.run(command, env=env, check=False).returncode
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
