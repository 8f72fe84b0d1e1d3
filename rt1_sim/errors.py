"""The one error type for what a user can fix: an option, config key, dataset, checkpoint or output folder.

The command line prints a `UserError` as one line (`rt1-sim <command>: error: <message>`) and exits with
status 2; any other exception is a bug and shows its traceback. Messages name the key, file or folder and the
reason. The subclasses say which input is wrong; catch `UserError` to catch them all.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message names what and where (no traceback is shown for it)."""


class ConfigError(UserError, ValueError):
    """A config file, `--set` override or option is wrong; the message names the key and the file."""


class DatasetError(UserError, ValueError):
    """A dataset on disk is missing something or is malformed; the message names the file and the problem."""


class CheckpointError(UserError, ValueError):
    """A checkpoint could not be used; the message names the file and the reason."""


class OutputError(UserError, ValueError):
    """An output folder cannot be used as asked (it already holds a run, a dataset of other settings, ...)."""


class PlotError(UserError, ValueError):
    """A run folder has no usable metrics to plot."""
