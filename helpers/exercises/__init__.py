"""Checks for the notebooks' exercises: the student's function against the course's reference.

Each notebook from 02 to 06 has exercises: a code cell where the student writes a loss, a
conditioning step or a training step (the solution sits between nbgrader's ``### BEGIN SOLUTION``
/ ``### END SOLUTION`` markers), followed by a check cell that calls one function of this
package. A check runs the student's function and the reference from the model family on random
inputs and, when they disagree, raises :class:`ExerciseError` with a message that says *what* is
wrong (a shape, a sign, a reduction, a missing ``detach``, a wrong target), not just that
something is.

:mod:`helpers.exercises.core` holds the machinery; one module per notebook holds its checks.
"""

from .core import ExerciseError, check_close, exercise_check, passed, reveal

__all__ = ["ExerciseError", "check_close", "exercise_check", "passed", "reveal"]
