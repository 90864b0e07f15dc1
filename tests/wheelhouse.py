"""A local wheelhouse rebuilt from this interpreter's installed distributions.

The plugin's bootstrap runs ``pip install -r hooks/requirements.txt``; tests
must not reach the internet, so they point pip at a directory of wheels made
here from what the test venv already has installed (files listed in each
distribution's RECORD, with a fresh RECORD), and set ``PIP_NO_INDEX``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import os
import re
import zipfile
from pathlib import Path

from pip._vendor.packaging.requirements import Requirement  # pip is in every venv


def _closure(names: list[str]) -> list[metadata.Distribution]:
    """The distributions ``names`` need, transitively, extras included (markers for here)."""
    seen: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo: list[tuple[str, set[str]]] = [(n, set()) for n in names]
    while todo:
        raw_name, extras = todo.pop()
        name = re.sub(r"[-_.]+", "-", raw_name).lower()
        dist = seen.setdefault(name, metadata.distribution(name))
        for extra in {"", *extras}:
            if (name, extra) in done:
                continue
            done.add((name, extra))
            for raw in dist.requires or []:
                req = Requirement(raw)
                if req.marker is None or req.marker.evaluate({"extra": extra}):
                    todo.append((req.name, set(req.extras)))
    return list(seen.values())


def _hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def build_wheel(dist: metadata.Distribution, out: Path) -> Path:
    """Pack one installed distribution back into a wheel (uncompressed: it is local)."""
    info = next(p for p in dist.files or [] if p.parts[0].endswith(".dist-info"))
    info_dir = info.parts[0]
    wheel_meta = (Path(str(dist.locate_file(info_dir))) / "WHEEL").read_text()
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines()
            if line.startswith("Tag:")]
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    path = out / f"{name}-{dist.version}-{tags[0]}.whl"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as wheel:
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts or (
                    file.parts[0] == info_dir and file.name in skip):
                continue
            source = Path(str(dist.locate_file(file)))
            if not source.is_file():
                continue
            data = source.read_bytes()
            entry = zipfile.ZipInfo(file.as_posix())
            # Keep the mode: the SDK's bundled Claude Code CLI must stay executable.
            entry.external_attr = (source.stat().st_mode & 0o777 | 0o100000) << 16
            wheel.writestr(entry, data)
            record.append(f"{file.as_posix()},{_hash(data)},{len(data)}")
        record.append(f"{info_dir}/RECORD,,")
        wheel.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")
    return path


def build(requirements: list[str], out: Path) -> list[Path]:
    """Wheels of ``requirements`` and everything they need, into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    names = [Requirement(r).name for r in requirements]
    return [build_wheel(d, out) for d in _closure(names)]


if __name__ == "__main__":  # python tests/wheelhouse.py OUT
    import sys

    root = Path(__file__).resolve().parents[1]
    reqs = [line for line in (root / "hooks" / "requirements.txt").read_text().splitlines()
            if line.strip()]
    for wheel in build(reqs, Path(sys.argv[1])):
        print(wheel.name, os.path.getsize(wheel))
