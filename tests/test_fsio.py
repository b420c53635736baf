"""Outputs are replaced only by complete files, with ordinary permissions."""

import os

import pytest


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    from depthda.utils.fsio import atomic_dir, write_text_atomic
    mask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("y")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_failed_write_leaves_the_old_file(tmp_path):
    import pytest
    from depthda.utils.fsio import atomic_path
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_concurrent_folder_writers_never_collide_and_last_one_wins(tmp_path):
    """Many processes replacing the same folder: no error, and the folder is always one writer's whole."""
    import subprocess
    import sys

    target = tmp_path / "out"
    script = (
        "import sys\n"
        "from depthda.utils.fsio import atomic_dir\n"
        "tag = sys.argv[2]\n"
        "for i in range(40):\n"
        "    with atomic_dir(sys.argv[1]) as d:\n"
        "        for k in range(5):\n"
        "            (d / f'{k}.txt').write_text(f'{tag}-{i}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(target), str(n)], stderr=subprocess.PIPE, text=True)
             for n in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    contents = {f.read_text() for f in target.iterdir()}
    assert len(contents) == 1 and sorted(f.name for f in target.iterdir()) == [f"{k}.txt" for k in range(5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside it


def test_killed_writer_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    import signal
    import subprocess
    import sys

    from depthda.utils.fsio import write_text_atomic

    target = tmp_path / "checkpoint.pt"
    target.write_text("old")
    script = ("import sys, time\nfrom depthda.utils.fsio import atomic_path, atomic_dir\n"
              "with atomic_path(sys.argv[1]) as t, atomic_dir(sys.argv[1] + '_d') as d:\n"
              "    t.write_text('half'); (d / 'x').write_text('half'); print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert len(left) == 2 and target.read_text() == "old"  # killed: its temporaries stay, the old file is intact
    write_text_atomic(target, "new")
    write_text_atomic(tmp_path / "checkpoint.pt_d", "file now")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "checkpoint.pt_d"]


def test_temporaries_of_live_processes_are_kept(tmp_path):
    from depthda.utils.fsio import atomic_path, remove_stale_temporaries

    target = tmp_path / "a.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("x")
        assert remove_stale_temporaries(target) == [] and tmp.exists()  # our own, in use


def test_a_file_where_an_output_folder_goes_is_refused(tmp_path):
    import pytest

    from depthda.errors import DepthdaError
    from depthda.utils.fsio import atomic_dir

    (tmp_path / "out").write_text("a file")
    with pytest.raises(DepthdaError, match="is not a folder"):
        with atomic_dir(tmp_path / "out") as d:
            (d / "x").write_text("y")
    assert (tmp_path / "out").read_text() == "a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_signals_deferred_holds_ctrl_c_while_other_threads_run():
    """The kernel gives a process signal to any thread that does not block it; a thread mask on
    the main thread alone would let Ctrl-C interrupt the block (torch and gloo start threads)."""
    import os
    import signal
    import threading
    import time

    from depthda.utils.fsio import signals_deferred

    # A job started in the background by a non-interactive shell inherits SIGINT ignored, and
    # signals_deferred rightly restores that: the test needs Python's own Ctrl-C handler.
    original = signal.signal(signal.SIGINT, signal.default_int_handler)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_deferred() as held:
                os.kill(os.getpid(), signal.SIGINT)
                # The kernel may hand the signal to the other thread, which a loaded machine can
                # schedule late; Python then runs the handler in this thread between bytecodes.
                deadline = time.monotonic() + 30
                while not held and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert held == [signal.SIGINT]
                done.append("block finished")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        stop.set()
        other.join()
        signal.signal(signal.SIGINT, original)
    assert done == ["block finished"]
