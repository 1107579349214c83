"""Running a pybpf tool as a user would (``python -m pybpf tool NAME --json``)
around a workload: start it, wait until it says it is tracing, run the
workload, stop it with SIGINT, return its JSON lines."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


class ToolRun:
    """A tool running in a child process."""

    def __init__(self, name: str, *options: str, python: str = sys.executable,
                 cwd: Optional[str] = None, json_output: bool = True,
                 isolated: bool = False):
        """``isolated``: without PYTHONPATH, so only what ``python`` has installed is seen."""
        argv = [python, "-m", "pybpf", "tool", name, *options] + (["--json"] if json_output
                                                                  else [])
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if isolated:
            env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=cwd or str(ROOT), text=True, env=env)
        self.stderr_head: List[str] = []
        while True:
            line = self.proc.stderr.readline()
            if not line:
                out, err = self.proc.communicate()
                pytest.fail(f"tool {name} ended before tracing: {''.join(self.stderr_head)}"
                            f"{err}{out}")
            self.stderr_head.append(line)
            if line.startswith("Tracing "):
                break

    def stop(self) -> str:
        """SIGINT, then the whole stdout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}: {err}"
        return out

    def wait(self) -> str:
        """Wait for the tool to end by itself (interval/count, --duration)."""
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}: {err}"
        return out


def records(out: str) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def run_tool(name: str, *options: str, workload: Callable[[], Any]) -> List[Dict[str, Any]]:
    """Records the tool printed while ``workload`` ran."""
    run = ToolRun(name, *options)
    try:
        workload()
    except BaseException:
        run.proc.kill()
        run.proc.communicate()
        raise
    return records(run.stop())


def matching(recs: Sequence[Dict[str, Any]], **want: Any) -> List[Dict[str, Any]]:
    return [r for r in recs if all(r.get(k) == v for k, v in want.items())]
