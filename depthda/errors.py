"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class DepthdaError(Exception):
    """A problem with the user's input (paths, files, options), not a bug in depthda."""


class DepthdaWarning(UserWarning):
    """Something the user should know that does not stop the run; the CLI prints it as one line."""
