"""The machinery every exercise check uses (see :mod:`helpers.exercises`)."""

from __future__ import annotations

import functools
import html
import inspect
import traceback
from pathlib import Path
from typing import Callable

import torch

_HELPERS = str(Path(__file__).resolve().parents[1])  # the course's package: its frames are never shown


class ExerciseError(AssertionError):
    """The student's code disagrees with the reference; the message says how, and what to look at.

    In Jupyter it shows as its message alone (IPython's ``_render_traceback_`` hook): no frame
    of the checker, whose source holds the reference. When the student's own code raised, the
    frames of *their* code follow, so the failing line can still be found.
    """

    def _render_traceback_(self) -> list[str]:
        lines = [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]
        cause = self.__cause__
        if cause is not None:
            frames = [f for f in traceback.extract_tb(cause.__traceback__) if not _course_file(f.filename)]
            if frames:
                lines += ["", "where your code raised it:"]
                lines += [line.rstrip("\n") for line in traceback.format_list(frames)]
                lines += [f"{type(cause).__name__}: {cause}"]
        return lines


def _course_file(filename: str) -> bool:
    try:
        return str(Path(filename).resolve()).startswith(_HELPERS)
    except (OSError, ValueError):
        return False


def exercise_check(check: Callable) -> Callable:
    """Make a check fail only with :class:`ExerciseError`, whatever the student's code raises.

    A student function that raises (or is still ``raise NotImplementedError``) becomes an
    ``ExerciseError`` saying so, with the original attached as its cause: Jupyter then shows the
    message and the student's own frames, never the checker's.
    """

    @functools.wraps(check)
    def guarded(fn, *args, **kwargs):
        name = getattr(fn, "__name__", "your function")
        try:
            return check(fn, *args, **kwargs)
        except ExerciseError:
            raise
        except NotImplementedError as e:
            raise ExerciseError(f"{name} is not written yet: replace its `raise NotImplementedError()` with "
                                "your code, run that cell, then this one") from e
        except Exception as e:  # noqa: BLE001 -- anything the student's code raised, said in their terms
            message = str(e).strip().rstrip(".")
            raise ExerciseError(f"{name} raised {type(e).__name__}: {message}. Its own lines are listed below; "
                                "the shapes and types in the message are the first thing to look at") from e

    return guarded


def _tensor(x, what: str) -> torch.Tensor:
    if not torch.is_tensor(x):
        raise ExerciseError(f"{what} should return a torch tensor, but it returned {type(x).__name__}")
    return x


def check_close(got, want: torch.Tensor, what: str, diagnoses: dict[str, Callable[[], torch.Tensor]] | None = None,
                atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise :class:`ExerciseError` unless ``got`` equals ``want`` (shape and values).

    ``diagnoses`` maps a plain-words explanation of a typical mistake to a function that computes
    what that mistake would give: when the student's result matches one of them, the error names
    that mistake ("you averaged where you should sum", "the sign is flipped" ...).
    """
    got = _tensor(got, what)
    if got.shape != want.shape:
        raise ExerciseError(f"{what} returned shape {tuple(got.shape)}, expected {tuple(want.shape)}"
                            + (" (a single number: reduce with .mean())" if want.dim() == 0 else ""))
    got_f, want_f = got.detach().float(), want.detach().float()
    if torch.allclose(got_f, want_f, atol=atol, rtol=rtol):
        return
    for explanation, wrong in (diagnoses or {}).items():
        w = wrong().detach().float()
        if w.shape == got_f.shape and torch.allclose(got_f, w, atol=atol, rtol=rtol):
            raise ExerciseError(f"{what}: {explanation}")
    diff = (got_f - want_f).abs().max().item()
    raise ExerciseError(f"{what} gives different numbers from the reference (largest difference {diff:.4g}); "
                        "compare your code with the equation above the cell")


def passed(what: str) -> str:
    """The line a check prints when the student's code is right."""
    message = f"correct: {what} agrees with the reference on random inputs"
    print(message)
    return message


def reveal(*objects, title: str = "the course's version") -> str:
    """The source of ``objects`` folded in a ``<details>`` block, shown once the student's code has trained.

    Notebooks call it *after* their training cell, never before: until then the student compares
    their code with the equations, not with ours. Returns an ``IPython.display.HTML`` (Jupyter
    shows it as a cell's last line; ``.data`` is the HTML), or the HTML text without IPython.
    """
    parts = []
    for obj in objects:
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", type(obj).__name__))
        parts.append(f"<p><code>{html.escape(name)}</code></p><pre>{html.escape(inspect.getsource(obj))}</pre>")
    block = f"<details><summary>{html.escape(title)}: click to open</summary>{''.join(parts)}</details>"
    try:
        from IPython.display import HTML  # noqa: PLC0415 -- only where there is a display
    except ImportError:  # pragma: no cover -- IPython comes with Jupyter
        return block
    return HTML(block)
