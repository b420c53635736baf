"""Image sizes given on the command line as HEIGHTxWIDTH."""

from __future__ import annotations

import re

from depthda.errors import DepthdaError

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str, min_side: int = 16) -> tuple[int, int]:
    """'192x640' -> (192, 640): height first, like tensor shapes; each side at least `min_side` px."""
    match = _SIZE.match(str(text))
    if not match:
        raise DepthdaError(f"size must be HxW, i.e. HEIGHTxWIDTH in pixels, e.g. 192x640 (got {text!r})")
    height, width = int(match.group(1)), int(match.group(2))
    if height < min_side or width < min_side:
        raise DepthdaError(f"size {height}x{width} is too small: each side needs at least {min_side} px")
    return height, width
