"""What every `keyring` start pays for this plugin, checked in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("requests", "azure", "azure.identity", "msal", "urllib3")


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ARTIFACTS_", "AZURE_", "PYTHON_KEYRING", "KEYRING_"))
    }
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )


def test_a_foreign_lookup_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import json, sys, keyring\n"
        "keyring.get_keyring()\n"
        "answer = keyring.get_password('https://pypi.org/simple/', 'u')\n"
        "credential = keyring.get_credential('poetry-repository-x', None)\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "mine = 'artifacts_keyring_nofuss.backend' in sys.modules\n"
        "print(json.dumps({'answer': answer, 'credential': credential is None,"
        " 'heavy': heavy, 'mine': mine}))\n"
    )
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"answer": None, "credential": True, "heavy": [], "mine": True}


def test_importing_the_backend_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import artifacts_keyring_nofuss.backend\n"
        "import artifacts_keyring_nofuss.feeds\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_the_entry_point_is_registered(tmp_path: Path) -> None:
    code = (
        "from importlib.metadata import entry_points\n"
        "for ep in entry_points(group='keyring.backends'):\n"
        "    print(ep.name, ep.value)\n"
    )
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "artifacts_keyring_nofuss artifacts_keyring_nofuss.backend" in done.stdout.splitlines()


def _keyring_command() -> list[str]:
    script = Path(sys.executable).with_name("keyring")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "keyring"]


def test_keyring_lists_the_backend(tmp_path: Path) -> None:
    done = _run([*_keyring_command(), "--list-backends"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "AzureArtifactsBackend" in line]
    assert lines == ["artifacts_keyring_nofuss.backend.AzureArtifactsBackend (priority: 9.9)"]


@pytest.mark.parametrize(
    "args",
    [
        ["get", "https://pypi.org/simple/", "u"],
        ["get", "python-poetry-check", "u"],
        ["--mode", "creds", "--output", "json", "get", "pkgs.dev.azure.com"],
    ],
)
def test_keyring_get_for_a_foreign_service_prints_nothing(tmp_path: Path, args: list[str]) -> None:
    done = _run([*_keyring_command(), *args], tmp_path)
    assert done.returncode == 1  # keyring's "not found"
    assert done.stdout == ""
    assert "artifacts-keyring-nofuss" not in done.stderr
    assert "Traceback" not in done.stderr


# --- the layers: data flows one way, and nothing imports upward ---------------------------------

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "artifacts_keyring_nofuss"
# Lowest first. A module may import its own layer's modules (no cycles) and those below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "errors", "devops", "claims", "challenges", "log"),
    ("local", "feeds", "tokens", "endpoints", "trace", "azversion"),
    ("settings",),
    ("deadline",),
    ("http", "discovery"),
    ("exchange", "keys", "store", "probe"),
    ("cache", "signin"),
    ("identities", *(f"identities.{p.stem}" for p in (PACKAGE / "identities").glob("[!_]*.py"))),
    ("lookup",),
    ("backend", "doctor", "configure", "cli", "__main__"),
)
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    parts = relative.parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The package's modules that this file imports, wherever in the file (lazy imports too)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path)
    package = here.rsplit(".", 1)[0] if path.name != "__init__.py" and "." in here else here
    if path.parent == PACKAGE:
        package = ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package if node.level == 1 else ""
            module = node.module or ""
        elif node.module and node.module.startswith("artifacts_keyring_nofuss"):
            base = ""
            module = node.module.removeprefix("artifacts_keyring_nofuss").lstrip(".")
        else:
            continue
        target = ".".join(p for p in (base, module) if p)
        if target in LAYER:
            found.add(target)
        for alias in node.names:
            candidate = ".".join(p for p in (target, alias.name) if p)
            if candidate in LAYER:
                found.add(candidate)
    found.discard(here)
    return found


def test_every_module_has_a_layer() -> None:
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    assert modules == set(LAYER)


def test_nothing_imports_upward() -> None:
    upward = [
        f"{_module_name(path)} imports {target}"
        for path in PACKAGE.rglob("*.py")
        for target in sorted(_imports(path))
        if LAYER[target] > LAYER[_module_name(path)]
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    graph = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    # Within identities, the package's __init__ is what every source imports.
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == "identities" and node.startswith("identities."):
                continue
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*trail, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
