"""Hook wall-time benchmark: ``python tests/bench_hooks.py [--runs N] [--json FILE]``.

Runs each hook as Claude Code does (a process, the payload on stdin) against a
live worker whose agent talks to the mock API, interleaved with two baselines
measured in the same run: a bare ``python -c pass`` and the floor a Python hook
cannot go below, ``python -c "import json, sqlite3, socket"``. Machines here are
noisy, so ratios to those baselines are the figures to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mockapi import MockAnthropic  # noqa: E402

PAYLOADS = Path(__file__).resolve().parent / "payloads"


def _time(cmd: list[str], data: bytes, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, input=data, env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()

    mock = MockAnthropic().start()
    tmp = Path(tempfile.mkdtemp(prefix="memoir-bench-"))
    env = dict(os.environ)
    env.update({
        "MEMOIR_HOME": str(tmp / "home"), "HOME": str(tmp / "user"),
        "ANTHROPIC_BASE_URL": mock.url, "ANTHROPIC_API_KEY": "dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "TMPDIR": str(tmp),
    })
    (tmp / "user").mkdir()
    py = sys.executable
    load = lambda name: json.loads((PAYLOADS / f"{name}.json").read_text())  # noqa: E731
    hook = [py, "-m", "claude_memoir.hook"]

    # A live session with a worker and some history for SessionStart to read.
    prompt = json.dumps(load("user_prompt_submit")).encode()
    _time([*hook, "user-prompt-submit"], prompt, env)
    time.sleep(1.0)

    cases: dict[str, tuple[list[str], bytes]] = {
        "bare python": ([py, "-c", "pass"], b""),
        "floor (json, sqlite3, socket)": ([py, "-c", "import json, sqlite3, socket"], b""),
        "session-start": ([*hook, "session-start"],
                          json.dumps(load("session_start_startup")).encode()),
        "user-prompt-submit": ([*hook, "user-prompt-submit"], prompt),
        "stop": ([*hook, "stop"], json.dumps(load("stop")).encode()),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    samples["post-tool-use"] = []
    base_event = load("post_tool_use_bash")
    for run in range(args.runs):
        for name, (cmd, data) in cases.items():  # interleaved: drift hits all alike
            samples[name].append(_time(cmd, data, env))
        event = dict(base_event, tool_use_id=f"toolu_bench{run:05d}")
        samples["post-tool-use"].append(
            _time([*hook, "post-tool-use"], json.dumps(event).encode(), env))
    end = json.dumps(load("session_end_other")).encode()
    samples["session-end"] = [_time([*hook, "session-end"], end, env)]
    mock.stop()
    # Leave nothing behind: the worker and its agent, and the temp home.
    from conftest import kill_workers

    kill_workers(Path(env["MEMOIR_HOME"]))
    shutil.rmtree(tmp, ignore_errors=True)

    floor = statistics.median(samples["floor (json, sqlite3, socket)"])
    rows = []
    print(f"{'case':<32}{'median ms':>10}{'p95 ms':>9}{'x floor':>9}")
    for name, values in samples.items():
        values.sort()
        median = statistics.median(values)
        p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
        rows.append({"case": name, "runs": len(values), "median_ms": round(median * 1000, 1),
                     "p95_ms": round(p95 * 1000, 1), "x_floor": round(median / floor, 2)})
        print(f"{name:<32}{median * 1000:>10.1f}{p95 * 1000:>9.1f}{median / floor:>9.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
