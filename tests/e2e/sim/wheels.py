"""Real, tiny, pure-Python wheels built with the standard library alone."""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

# Fixed timestamps make the same inputs give byte-identical wheels (and hashes).
_STAMP = (2024, 1, 1, 0, 0, 0)


def escape(name: str) -> str:
    """The distribution name as it appears in wheel file and directory names."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
    return f"sha256={digest}"


def build_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    requires: tuple[str, ...] | list[str] = (),
    module_source: str | None = None,
) -> Path:
    """Write {name}-{version}-py3-none-any.whl with a top-level module {name_underscored}.py."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dist = escape(name)
    module = name.replace("-", "_").replace(".", "_")
    source = (
        module_source
        if module_source is not None
        else (
            f'"""{name}: a package served by the simulated feeds."""\n\n__version__ = "{version}"\n'
        )
    )
    dist_info = f"{dist}-{version}.dist-info"
    metadata = "".join(
        [
            "Metadata-Version: 2.1\n",
            f"Name: {name}\n",
            f"Version: {version}\n",
            f"Summary: {name}, built for the end-to-end tests\n",
            *(f"Requires-Dist: {r}\n" for r in requires),
        ]
    )
    wheel_meta = (
        "Wheel-Version: 1.0\nGenerator: tests.e2e.sim.wheels\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    )
    files = [
        (f"{module}.py", source.encode()),
        (f"{dist_info}/METADATA", metadata.encode()),
        (f"{dist_info}/WHEEL", wheel_meta.encode()),
    ]
    record_name = f"{dist_info}/RECORD"
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files)
    record += f"{record_name},,\n"
    files.append((record_name, record.encode()))

    target = dest_dir / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in files:
            info = zipfile.ZipInfo(path, date_time=_STAMP)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return target


def wheel_name_version(filename: str) -> tuple[str, str]:
    """(distribution, version) from a wheel or sdist file name."""
    if filename.endswith(".whl"):
        dist, version = filename[: -len(".whl")].split("-")[:2]
        return dist, version
    stem = re.sub(r"\.(tar\.gz|zip)$", "", filename)
    dist, _, version = stem.rpartition("-")
    return dist, version


# --- the packages every simulated feed serves ------------------------------------------------

WHEELHOUSE_SPEC: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tinyfeedpkg", "1.0.0", ()),
    ("tinyfeedpkg", "1.1.0", ()),
    ("tinydep", "0.3.0", ()),
    ("tinyapp", "2.0.0", ("tinydep>=0.3",)),
)


@dataclass(frozen=True)
class Wheelhouse:
    directory: Path
    wheels: tuple[Path, ...]

    def path(self, name: str, version: str) -> Path:
        wanted = f"{escape(name)}-{version}-py3-none-any.whl"
        for wheel in self.wheels:
            if wheel.name == wanted:
                return wheel
        raise KeyError(wanted)


def build_wheelhouse(directory: Path) -> Wheelhouse:
    wheels = tuple(
        build_wheel(directory, name, version, requires)
        for name, version, requires in WHEELHOUSE_SPEC
    )
    return Wheelhouse(directory, wheels)
