"""The benchmark runs as documented and reports what issue 5 asks for.

Runs ``python -m tests.benchmarks --quick --only hooks burst --runs 3`` as a user
would (a process, from the repository root) and checks its JSON: every hook case
measured with no failed run, positive timings, targets judged, nothing lost or
failing in the burst, and nothing left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from benchmarks import BARE, FLOOR

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parent.parent
HOOK_CASES = ("session-start", "user-prompt-submit", "pre-tool-use (Read)", "post-tool-use",
              "stop", "session-end (live worker)", "session-end (hung worker)")
TARGETED = ("user-prompt-submit", "pre-tool-use (Read)", "post-tool-use", "stop",
            "session-end (hung worker)")


def _left_running(root: str) -> list[int]:
    """Pids of processes whose MEMOIR_HOME lies under the benchmark's temp root."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("MEMOIR_HOME", "").startswith(root):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def test_quick_benchmark_of_hooks_and_burst(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--quick", "--only", "hooks", "burst",
         "--runs", "3", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "== hooks ==" in done.stdout and "== burst ==" in done.stdout
    data = json.loads(out.read_text())
    rows = {(r["section"], r["case"]): r for r in data["rows"]}
    assert {section for section, _ in rows} == {"hooks", "burst"}

    for case in (BARE, FLOOR, *HOOK_CASES):
        row = rows[("hooks", case)]
        assert row["runs"] == 3 and row["failures"] == 0, row
        assert 0 < row["median_ms"] <= row["p95_ms"], row
        assert row["x_floor"] > 0, row
    assert rows[("hooks", FLOOR)]["x_floor"] == 1.0
    # A hook cannot beat the interpreter doing nothing.
    assert rows[("hooks", "post-tool-use")]["median_ms"] > rows[("hooks", BARE)]["median_ms"]
    for case in TARGETED:
        row = rows[("hooks", case)]
        assert row["target"] == "<= 1.25x floor" and isinstance(row["ok"], bool), row
        # The verdict follows the ratio (x_floor is rounded: 1.25 can go either way).
        assert row["ok"] == (row["x_floor"] <= 1.25) or row["x_floor"] == 1.25, row

    burst = {case: row for (section, case), row in rows.items() if section == "burst"}
    total = data["plan"]["burst_sessions"] * data["plan"]["burst_per_session"]
    assert burst["post-tool-use under load"]["runs"] == total
    assert burst["post-tool-use under load"]["failures"] == 0
    assert burst["events lost"]["value"] == 0 and burst["events lost"]["ok"] is True
    assert burst["hook errors"]["value"] == 0 and burst["hook errors"]["ok"] is True
    assert burst["throughput"]["value"] > 0
    assert burst["payloads spooled (db locked)"]["value"] >= 0
    assert not any(row["case"] == "section did not complete" for row in data["rows"])

    assert not Path(data["temp_root"]).exists()
    assert _left_running(data["temp_root"]) == []
