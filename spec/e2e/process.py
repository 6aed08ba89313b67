"""Stopping the processes the harness started (Prosody, PostgreSQL): by pid, never by name."""

from __future__ import annotations

import os
import signal
import subprocess

STOP_TIMEOUT = 10.0


def stop_process(proc: "subprocess.Popen | None", signum: int, timeout: float | None = None) -> int | None:
    """Stops a process this harness started, by its pid: `signum`, then SIGKILL after a timeout.
    Returns its exit status (None when there was no process)."""
    if proc is None:
        return None
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.kill(proc.pid, signum)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout or STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(5)
