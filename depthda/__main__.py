"""`python -m depthda ...` is the same as `depthda ...` (torchrun launches it this way)."""

from depthda.cli import main

if __name__ == "__main__":
    main()
