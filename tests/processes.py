"""depthda as a real process, and a signal sent to it once its work has started (what a shell user,
`docker stop` or systemd does)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def start(args) -> subprocess.Popen:
    # A shell starts background jobs with SIGINT ignored, and a child inherits that (CI may run us
    # so); give the child the disposition of a terminal user's foreground process.
    return subprocess.Popen([sys.executable, "-m", "depthda", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def staging_in(folder: Path):
    """A `ready` for signal_when: depthda's hidden temporaries are in `folder`, so its work has begun
    and not yet been moved into place (a finished output alone does not count)."""
    return lambda: any(p.name.startswith(".") for p in folder.iterdir())


def signal_when(proc: subprocess.Popen, ready, sig: int, what: str = "the command") -> tuple[int, str]:
    """Wait until `ready()`, send `sig`, and return (exit code, stderr); fail if it ended first, or
    if it has not ended two minutes after the signal."""
    while not ready():
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is not None:  # checked after ready() too: a slow poll may see only the end
        _, err = proc.communicate()
        pytest.fail(f"{what} ended before the signal (exit {proc.returncode}): {err[-2000:]}")
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"{what} was still running 120 s after signal {sig}: {err[-2000:]}")
    return proc.returncode, err
