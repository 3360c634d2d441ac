"""The harness's user errors: a data set or a results folder that cannot be used as asked.

They are `VitbenchError`s like the models' own (`models.errors`: settings, checkpoints, input shapes), so the CLI
prints each as one line naming the problem and the fix and exits 2.
"""
from models.errors import VitbenchError


class DatasetError(VitbenchError, ValueError):
    """A dataset folder, subset or image file that cannot be used as asked."""


class ResultsError(VitbenchError, ValueError):
    """A results folder or sweep config that is not ours or cannot be read."""
