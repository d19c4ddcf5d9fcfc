"""The machinery every exercise check uses (see :mod:`helpers.exercises`)."""

from __future__ import annotations

from typing import Callable

import torch


class ExerciseError(AssertionError):
    """The student's code disagrees with the reference; the message says how, and what to look at."""


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
