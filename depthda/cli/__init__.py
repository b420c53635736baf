"""The `depthda` command line: a thin layer over the Python API.

Each command module under depthda/cli/ defines `register(app)`; only modules listed in
COMMAND_MODULES are registered, so every command shown by `depthda --help` works.

Exit codes: 0 success, 1 a user error (one `depthda: error: ...` line), 2 a usage error (usage
hint and one line), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM: docker stop, systemd,
Kubernetes), cleaned up as for Ctrl-C.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import os
import select
import signal
import sys
import threading
import warnings

VERBOSE_FLAG = "--verbose"


def _quiet_native_libraries(argv: list[str]) -> None:
    # OpenCV's and FFmpeg's own log lines ("moov atom not found", libpng's) would precede depthda's
    # one-line error; they read these at start-up, so this runs before any command imports cv2.
    if VERBOSE_FLAG in argv:
        return
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


_quiet_native_libraries(sys.argv[1:])

import typer  # noqa: E402

from depthda.errors import DepthdaError, DepthdaWarning  # noqa: E402

app = typer.Typer(
    name="depthda",
    help="Monocular depth from synthetic data with domain adaptation via image style transfer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: typer >= 0.29's rich help prints "<bool>" after every flag
    rich_markup_mode=None,
)

COMMAND_MODULES = (
    "data",
    "evaluate",
    "train",
    "synth",
    "predict",
    "bench",
    "export",
    "demo",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"depthda.cli.{_name}").register(app)


def _without_readable_checks(typer_app: typer.Typer) -> None:
    """typer.Option/Argument(readable=False) for every path of every command: typer's default check
    refuses an existing path that cannot be read as a usage error (exit 2), but that is a user
    error (exit 1), which the command reports in its one line when it opens the file."""
    commands = [c.callback for c in typer_app.registered_commands]
    for group in typer_app.registered_groups:
        _without_readable_checks(group.typer_instance)
    for callback in commands:
        for parameter in inspect.signature(callback).parameters.values():
            if hasattr(parameter.default, "readable"):
                parameter.default.readable = False


_without_readable_checks(app)


@app.callback()
def _options(verbose: bool = typer.Option(False, VERBOSE_FLAG, help="Keep OpenCV's and FFmpeg's own log lines "
                                          "(silenced so that an error is one line); give it before the command.")):
    """Monocular depth from synthetic data with domain adaptation via image style transfer."""

# typer < 0.26 raises click's exceptions; later releases carry their own copy of click
# (typer._click) and raise typer.Exit/typer.Abort. The module that defines typer's BadParameter
# is the click that typer runs on, whichever release is installed.
_click_exceptions = sys.modules[typer.BadParameter.__module__]


def _classes(*candidates) -> tuple[type, ...]:
    return tuple({c for c in candidates if c is not None})


_USAGE_ERRORS = (_click_exceptions.ClickException,)
_EXITS = _classes(typer.Exit, getattr(_click_exceptions, "Exit", None))
_ABORTS = _classes(typer.Abort, getattr(_click_exceptions, "Abort", None), KeyboardInterrupt)
INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
TERMINATED = 143  # 128 + SIGTERM
_terminated = False


def _on_sigterm(signum, frame) -> None:
    # Unwound like Ctrl-C, so every temporary is removed and every worker stopped on the way out.
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


def _interrupted() -> int:
    if _terminated:
        print("\ndepthda: terminated", file=sys.stderr)
        return TERMINATED
    print("\ndepthda: interrupted", file=sys.stderr)
    return INTERRUPTED


def _stdout_closed() -> bool:
    """True if stdout is a pipe whose reader has gone (`depthda ... | true`): poll reports an error
    on a pipe's write end once no reader is left."""
    try:
        poll = select.poll()
        poll.register(sys.__stdout__.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    # Later writes (and the interpreter's final flush) go nowhere instead of raising again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _usage_hint(argv: list[str]) -> None:
    words = []
    for arg in argv:  # the command (and subcommand) the user typed, up to its first option
        if arg.startswith("-"):
            break
        words.append(arg)
    command = " ".join(["depthda", *words])
    print(f"Usage: {command} [OPTIONS] ...\nTry '{command} --help' for help.\n", file=sys.stderr)


def _check_encodable(argv: list[str]) -> None:
    # Bytes that are not UTF-8 reach Python as surrogate escapes; OpenCV and ffmpeg cannot take
    # such a file name (cv2.imwrite crashes the process), so refuse it before anything runs.
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            raise DepthdaError(f"{shown!r} is not valid UTF-8; rename the file or folder") from None


def _os_error(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"no space left on device{where}; outputs are replaced only when complete, so existing ones are untouched"
    return f"{exc.strerror or exc}{where}"


_show_warning = warnings.showwarning


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """depthda's own warnings as one `depthda: warning: ...` line; others as Python shows them."""
    if issubclass(category, DepthdaWarning):
        print(f"depthda: warning: {message}", file=sys.stderr if file is None else file)
    else:
        _show_warning(message, category, filename, lineno, file, line)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; user errors become one line on stderr."""
    global _terminated
    warnings.showwarning = _one_line_warning
    _terminated = False
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return _run(argv)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _run(argv: list[str] | None) -> int:
    try:
        _check_encodable(sys.argv[1:] if argv is None else argv)
        code = app(args=argv, prog_name="depthda", standalone_mode=False)
    except SystemExit as exc:
        # click turns a broken pipe (EPIPE) into exit 1 without a word, wrapping the streams.
        wrapped = getattr(sys.stdout, "wrapped", None)
        if exc.code != 1 or wrapped is None:
            raise
        sys.stdout, sys.stderr = wrapped, getattr(sys.stderr, "wrapped", sys.stderr)
        if _stdout_closed():  # the reader of our result lines left; the outputs themselves are complete
            _silence_stdout()
            return 0
        print("depthda: error: a pipe to a helper process broke (it exited early)", file=sys.stderr)
        return 1
    except DepthdaError as exc:
        print(f"depthda: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the file system said no: permissions, a full disk, a file where a folder goes
        print(f"depthda: error: {_os_error(exc)}", file=sys.stderr)
        return 1
    except _EXITS as exc:
        code = exc.exit_code
    except _USAGE_ERRORS as exc:
        if getattr(exc, "ctx", False) is None:  # raised while parsing, before click had a context to show
            _usage_hint(sys.argv[1:] if argv is None else argv)
        exc.show()
        return exc.exit_code
    except _ABORTS:  # click turns Ctrl-C (and EOF at a prompt) into Abort
        return _interrupted()
    # Without standalone mode typer returns the exit code of an Exit, and typer >= 0.26 turns
    # Ctrl-C into Exit(130) itself; no command of ours exits with 130 any other way.
    if not isinstance(code, int):
        code = 0
    if code == 0 and _stdout_closed():
        _silence_stdout()
    return _interrupted() if code == INTERRUPTED else code


def main() -> None:
    try:
        code = run()
    except KeyboardInterrupt:  # Ctrl-C while Python is still importing torch and the commands
        code = _interrupted()
    if code in (INTERRUPTED, TERMINATED):
        # Every output has been cleaned up by now. Skip interpreter teardown: native worker
        # threads (torch, OpenCV) interrupted mid-task can abort in their C++ destructors
        # ("terminate called without an active exception"), turning exit 130 into a crash.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
