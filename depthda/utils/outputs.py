"""One guard for every path a command writes, run before any work starts.

A command states what it reads and what it will write (`check_outputs`); the guard refuses, with
one line, every plan in which a write would destroy data the user still needs:
  - an output that is an input (the same file, through symbolic links and `..` alike);
  - an output inside a folder read whole (`trees`: predict's input folder, a SYNTHIA root);
  - an input inside a folder the run replaces whole;
  - two outputs naming the same file, or one output inside a folder another replaces;
  - an output whose folder is a file, or a path that cannot be resolved (a symbolic-link loop).
`check_replaceable` guards the contents of a folder replaced whole: it must hold only what the
command itself writes, so a mistaken `--out ~/Videos --overwrite` deletes nothing of the user's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from depthda.errors import DepthdaError

PathLike = str | os.PathLike
NAME_MAX = 255  # bytes in one file or folder name on Linux file systems


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symbolic-link loop (Python < 3.13)
        raise DepthdaError(f"cannot resolve {path}: a symbolic-link loop or an unreadable folder") from None


def _paths(items: Iterable[PathLike | None]) -> list[Path]:
    return [Path(p) for p in items if p is not None and str(p) != ""]


def _check_place(path: Path, real: Path, folder: bool) -> None:
    """The output can be created where it is named: each name fits the file system, its nearest
    existing ancestor is a folder, and what is already at the path is of the kind the command writes."""
    long = next((part for part in real.parts if len(os.fsencode(part)) > NAME_MAX), None)
    if long is not None:
        raise DepthdaError(f"cannot write {path}: the name {long[:40]}... is {len(os.fsencode(long))} bytes, "
                           f"over the file system's {NAME_MAX}")
    if folder and path.is_symlink():
        # A folder is replaced by renaming a new one onto its path, which a link cannot take.
        raise DepthdaError(f"output folder {path} is a symbolic link; give the folder it points to ({real})")
    if real.exists():
        if folder and not real.is_dir():
            raise DepthdaError(f"output folder {path} exists and is not a folder")
        if not folder and real.is_dir():
            raise DepthdaError(f"output {path} is an existing folder; give a file name")
    for parent in real.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DepthdaError(f"cannot write {path}: {parent} is not a folder")
            break


def check_outputs(*, reads: Iterable[PathLike | None] = (), trees: Iterable[PathLike | None] = (),
                  files: Iterable[PathLike | None] = (), folders: Iterable[PathLike | None] = ()) -> None:
    """Refuse a plan that would overwrite an input or another output; see the module docstring.

    reads   files (or folders) the command reads; no output may be one or replace a folder holding one.
    trees   folders read whole; additionally no output may lie inside one.
    files   files the command writes (each replaced whole).
    folders folders the command replaces whole (everything inside goes), or writes files into.
    None entries are skipped, so optional outputs can be passed as they are.
    """
    ins = [(p, _real(p)) for p in _paths(reads)]
    tree_ins = [(p, _real(p)) for p in _paths(trees)]
    outs = [(p, _real(p), False) for p in _paths(files)] + [(p, _real(p), True) for p in _paths(folders)]
    for path, real, folder in outs:
        _check_place(path, real, folder)
    for i, (a, ra, a_folder) in enumerate(outs):
        for b, rb, b_folder in outs[i + 1:]:
            if ra == rb:
                raise DepthdaError(f"two outputs name the same file: {a} and {b}")
            for inner, r_inner, outer, r_outer, outer_folder in ((a, ra, b, rb, b_folder), (b, rb, a, ra, a_folder)):
                if outer_folder and r_inner.is_relative_to(r_outer):
                    raise DepthdaError(f"output {inner} lies inside the output folder {outer}")
    for src, rsrc in ins + tree_ins:
        for dst, rdst, folder in outs:
            if rdst == rsrc:
                raise DepthdaError(f"output {dst} would overwrite the input {src}")
            if folder and rsrc.is_relative_to(rdst):
                raise DepthdaError(f"output folder {dst} would replace the folder that holds the input {src}")
    for src, rsrc in tree_ins:
        for dst, rdst, _ in outs:
            if rdst.is_relative_to(rsrc):
                raise DepthdaError(f"output {dst} must not be inside the input folder {src}")


def check_replaceable(folder: PathLike, ours: Callable[[Path], bool], writer: str) -> None:
    """A folder about to be replaced whole may hold only what `writer` writes: `ours(relative
    path)` says so for each file. Refuses with the first foreign file."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.rglob("*"):
        if (path.is_file() or path.is_symlink()) and not ours(path.relative_to(folder)):
            raise DepthdaError(f"{folder} holds files {writer} did not write (e.g. {path}); it would be "
                               "replaced whole: give a new or empty folder")


def check_overwrite(out: PathLike, overwrite: bool, writer: str, marker: str, owned: Callable[[Path], bool],
                    ours: Callable[[Path], bool]) -> None:
    """A non-empty `out` folder is replaced only with --overwrite, only if `owned(out)` says
    `writer` made it (its `marker` file), and only if it holds nothing else (check_replaceable)."""
    out = Path(out)
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not overwrite:
        raise DepthdaError(f"--out {out} exists and is not empty; refusing to replace it unless --overwrite is given")
    if not owned(out):
        raise DepthdaError(f"--out {out} holds no {marker} of `{writer}`; --overwrite replaces only what {writer} "
                           "wrote: give a new or empty folder")
    check_replaceable(out, ours, writer)


def files_under(*folders: PathLike | None, limit: int = 10_000) -> list[Path]:
    """The files in model or run folders (recursively, at most `limit`), as `reads` for
    check_outputs: an output may sit beside them but never replace one."""
    found: list[Path] = []
    for folder in _paths(folders):
        if folder.is_file():
            found.append(folder)
        elif folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file():
                    found.append(path)
                    if len(found) >= limit:
                        return found
    return found
