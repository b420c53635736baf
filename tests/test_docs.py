"""Every `depthda` command in a fenced block of README.md and docs/*.md works as written.

Each one's subcommand, and every flag it uses, must be in that subcommand's `--help`; the ones that
need nothing but this repository (RUN below) are also run, from a folder where `data/` and
`checkpoints/` are this repository's and every output lands in a temporary folder. Commands that
need a dataset, a GPU or the development machine's data are checked by --help only.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from depthda.cli import run

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# Run as written, with what each must leave behind besides its outputs (-o, --out, --json, --plot).
RUN = {
    "depthda predict data/kitti/object/image_2/000008.png -o outputs/000008_depth.png --depth-format png16":
        ["outputs/000008_depth_depth.png"],
    "depthda eval kitti --data-root data/kitti/raw --split-file data/splits/kitti_tiny_test_files.txt "
    "--gt annotated --baseline ground-plane --scaling median": [],
    "depthda eval kitti --data-root data/kitti/raw --split-file data/splits/kitti_tiny_test_files.txt "
    "--gt annotated --checkpoint checkpoints/default --scaling median": [],
    "depthda eval row-prior data/kitti/raw/2011_09_26/2011_09_26_drive_0023_sync/image_02/data": [],
    "depthda export --format onnx -o outputs/depthda.onnx --size 128x416": [],
    "depthda export --format torchscript -o outputs/depthda.pt": [],
}
# Run too, but each runs the networks over the whole sample clip: longer than the quick loop allows.
RUN_SLOW = {
    "depthda predict data/samples/dashcam_3s.mp4 -o outputs/dashcam_depth.mp4": [],
    "depthda eval video data/samples/dashcam_3s.mp4 --json outputs/temporal.json --plot outputs/temporal.png": [],
}
OUTPUT_FLAGS = ("-o", "--output", "--out", "--json", "--plot")
# Groups whose first argument may be a default subcommand's (depthda/cli/bench.py: `bench VIDEO`).
DEFAULT_SUBCOMMAND = {("bench",): "video"}
# Lines that name depthda without running it.
NOT_COMMANDS = ("docker build -t depthda .",)
SHELL_BLOCKS = ("bash", "sh", "shell", "console")
DEPTHDA_WORD = re.compile(r"(?<![\w/.-])depthda(?![\w/.-])")


@dataclass(frozen=True)
class DocCommand:
    where: str   # file:line
    line: str    # the shell line as written (continuations joined, comment dropped)
    args: tuple  # what follows `depthda`


def fenced_lines(path: Path):
    """(line number, language, line) of every fenced block's lines, continuations joined."""
    in_block, lang, pending, start = False, "", "", 0
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if text.lstrip().startswith("```"):
            in_block, lang = not in_block, text.strip()[3:].strip()
            continue
        if not in_block:
            continue
        pending, start = (pending + " " + text.strip(), start) if pending else (text.strip(), number)
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        yield start, lang, pending
        pending = ""


def depthda_args(segment: list[str]) -> list[str] | None:
    """The arguments a shell command segment passes to depthda, or None if it runs something else."""
    if segment[:1] == ["depthda"]:
        return segment[1:]
    if segment[:1] in (["torchrun"], ["python"], ["python3"]) and "-m" in segment:
        at = segment.index("-m")
        return segment[at + 2:] if segment[at + 1:at + 2] == ["depthda"] else None
    if segment[:2] == ["docker", "run"] and "depthda" in segment:  # the image's entry point is depthda
        return segment[segment.index("depthda") + 1:]
    return None


def split_segments(line: str) -> list[list[str]]:
    """A shell line's simple commands (split at &&, ||, ;, |, &), as tokens; comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    segments = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|", "&"):
            segments.append([])
        else:
            segments[-1].append(token)
    return [s for s in segments if s]


def commands_in(path: Path) -> tuple[list[DocCommand], list[str]]:
    """The depthda commands of a document's shell blocks, and the lines that look like one but were
    not read as one (a shell line naming depthda that runs something else, or a command in a block
    not marked as shell)."""
    found, unparsed = [], []
    for number, lang, line in fenced_lines(path):
        where = f"{path.relative_to(REPO)}:{number}"
        code = line.split(" #")[0].strip()
        if lang not in SHELL_BLOCKS:
            if re.match(r"(depthda|torchrun|python3? -m depthda)(?![\w/.-])", code):
                unparsed.append(f"{where} (in a ```{lang} block): {line}")
            continue
        cmds = [DocCommand(where, code, tuple(a))
                for a in map(depthda_args, split_segments(line)) if a is not None]
        found += cmds
        if not cmds and DEPTHDA_WORD.search(code) and code not in NOT_COMMANDS:
            unparsed.append(f"{where}: {line}")
    return found, unparsed


@functools.cache
def all_commands() -> tuple[DocCommand, ...]:
    return tuple(c for path in DOCS for c in commands_in(path)[0])


# ---------------------------------------------------------------------------- --help

@dataclass(frozen=True)
class Help:
    flags: frozenset
    commands: frozenset


@functools.cache
def help_of(words: tuple[str, ...]) -> Help:
    """The flags and subcommands `depthda WORDS --help` lists."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run([*words, "--help"])
    assert code == 0, f"depthda {' '.join(words)} --help exited {code}"
    flags, commands, section = set(), set(), None
    for line in out.getvalue().splitlines():
        if line and not line.startswith(" "):
            section = line.rstrip(":")
        elif section == "Options" and line.startswith("  -"):
            first_column = re.split(r"\s{2,}", line.strip())[0]
            flags.update(re.findall(r"(?:^|[ ,/])(--?[A-Za-z][\w-]*)", first_column))
        elif section == "Commands" and line.startswith("  ") and line.strip():
            commands.add(line.split()[0])
    return Help(frozenset(flags), frozenset(commands))


def check_against_help(args: tuple[str, ...]) -> None:
    """Raise AssertionError unless the subcommand and every flag of `depthda ARGS` exist."""
    rest, words = list(args), []
    while rest and rest[0].startswith("-"):  # global options, before the command
        assert rest[0] in help_of(()).flags, f"depthda has no option {rest[0]}"
        rest.pop(0)
    helped = help_of(())
    while helped.commands:
        if rest and rest[0] in helped.commands:
            words.append(rest.pop(0))
        elif tuple(words) in DEFAULT_SUBCOMMAND:
            words.append(DEFAULT_SUBCOMMAND[tuple(words)])
        else:
            name = rest[0] if rest else "(none)"
            raise AssertionError(f"depthda {' '.join(words)}: no command {name}; it has {sorted(helped.commands)}")
        helped = help_of(tuple(words))
    for arg in rest:
        if arg.startswith("-") and not re.fullmatch(r"-[\d.]+", arg):
            flag = arg.split("=", 1)[0]
            assert flag in helped.flags, f"depthda {' '.join(words)} has no option {flag}"


# ---------------------------------------------------------------------------- tests

def test_every_fenced_line_that_names_depthda_is_read_as_a_command():
    unparsed = [line for path in DOCS for line in commands_in(path)[1]]
    assert unparsed == []
    # README's two commands and a good share of the docs' are found at all.
    readme = {c.line for c in all_commands() if c.where.startswith("README.md")}
    assert [line.split()[1] for line in sorted(readme)] == ["eval", "predict"]
    assert len(all_commands()) >= 40


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: c.where)
def test_documented_command_exists_with_every_flag(command):
    check_against_help(command.args)


@pytest.mark.parametrize("line, message", [
    ("depthda predict x.png -o y.png --no-stlye", "depthda predict has no option --no-stlye"),
    ("depthda evall kitti --split eigen", "no command evall"),
    ("depthda eval kitty --split eigen", "depthda eval: no command kitty"),
    ("depthda bench data --data-rot /data", "depthda bench data has no option --data-rot"),
    ("depthda --verbos predict x.png", "depthda has no option --verbos"),
    ("depthda train-stage1 --data-root d --critic-step 0", "depthda train-stage1 has no option --critic-step"),
])
def test_a_misspelled_command_or_flag_fails_the_check(line, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_against_help(tuple(shlex.split(line)[1:]))


def test_the_run_tables_name_documented_commands():
    documented = {c.line for c in all_commands()}
    assert set(RUN) | set(RUN_SLOW) <= documented


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_cache")


def run_as_documented(line: str, leaves: list[str], tmp_path, monkeypatch, onnx_cache):
    for name in ("data", "checkpoints"):
        (tmp_path / name).symlink_to(REPO / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEPTHDA_CACHE", str(onnx_cache))
    args = shlex.split(line)[1:]
    assert run(args) == 0, line
    outputs = [args[i + 1] for i, a in enumerate(args[:-1]) if a in OUTPUT_FLAGS]
    for path in outputs + leaves:
        assert (tmp_path / path).exists() and (tmp_path / path).stat().st_size > 0, path


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("line", RUN, ids=lambda line: " ".join(line.split()[1:3]))
def test_self_contained_command_runs_as_documented(line, tmp_path, monkeypatch, onnx_cache):
    run_as_documented(line, RUN[line], tmp_path, monkeypatch, onnx_cache)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("line", RUN_SLOW, ids=lambda line: " ".join(line.split()[1:3]))
def test_longer_self_contained_command_runs_as_documented(line, tmp_path, monkeypatch, onnx_cache):
    run_as_documented(line, RUN_SLOW[line], tmp_path, monkeypatch, onnx_cache)


# ---------------------------------------------------------------------------- links

def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_in_readme_and_docs_reaches_its_file_and_heading():
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and anchor not in {github_anchor(h) for h in
                                           re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)}:
                broken.append(f"{path.name}: {target} (no such heading)")
    assert broken == []
