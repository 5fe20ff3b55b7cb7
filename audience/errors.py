"""The two kinds of failure the command line distinguishes (exit 1 vs exit 2)."""


class UserError(Exception):
    """Something the user can fix in their input or project (exit status 1)."""


class OperationalError(Exception):
    """The warehouse, network or a destination failed (exit status 2)."""
