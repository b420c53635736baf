"""depthda as a real process, and a signal sent to it once its work has started (what a shell user,
`docker stop` or systemd does)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest


def start(args) -> subprocess.Popen:
    # A shell starts background jobs with SIGINT ignored, and a child inherits that (CI may run us
    # so); give the child the disposition of a terminal user's foreground process.
    return subprocess.Popen([sys.executable, "-m", "depthda", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def signal_when(proc: subprocess.Popen, ready, sig: int, what: str = "the command") -> tuple[int, str]:
    """Wait until `ready()`, send `sig`, and return (exit code, stderr); fail if it ended first."""
    while not ready():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"{what} ended before the signal (exit {proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err
