"""Errors about user input that the CLI reports in one line, without a traceback.

Plugins raise :class:`UserError` (or :class:`DataError` for bad data) for anything the user can
fix: ``up2`` prints ``up2: error: <message>`` and exits with status 2.  Part of the plugin API.
"""

from __future__ import annotations


class UserError(Exception):
    """An error whose message tells the user what to fix; ``up2`` prints it as one line.

    Examples:
        >>> raise UserError("--phrases: give at least one phrase, e.g. --phrases 'the red "
        ...                 "circle'")                                   # doctest: +SKIP
    """


class DataError(UserError, ValueError):
    """Data that cannot be used as given: a corrupt image, a malformed annotation file or record.

    The message names the file (and the record) and says what would fix it.
    """


class TaskMismatchError(KeyError):
    """A batch names a task the model does not have (or several tasks at once).

    A KeyError (the task name is a key of ``model.tasks``) that the CLI reports in one line.
    """

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


class NonFiniteTrainingError(UserError, RuntimeError):
    """Training produced non-finite losses or gradients more often than the run allows.

    Raised by :class:`~up2core.engine.nonfinite.NonFiniteGuard`; the message counts the skipped
    steps per task and says what to change.  The weights were never updated by those steps.
    """


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be used: truncated, unreadable, hostile or non-finite.

    The message names the file and says what is wrong with it.
    """


class MissingExtraError(UserError, ImportError):
    """An optional dependency of UP2 is not installed; the message names the pip extra.

    Examples:
        >>> raise MissingExtraError.for_module('efficientnet_lite_pytorch', 'pretrained',
        ...                                    'EfficientNetLite0')        # doctest: +SKIP
    """

    @classmethod
    def for_module(cls, module: str, extra: str, needed_by: str) -> MissingExtraError:
        return cls(f"{needed_by} needs the Python package '{module}', which is not installed: "
                   f"pip install 'up2[{extra}]'")
