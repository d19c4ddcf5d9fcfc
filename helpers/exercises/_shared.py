"""Small tools that the checks of notebooks 04 to 06 share: calling the student's function, gradients, tiny networks."""

from __future__ import annotations

from typing import Callable

import torch

from .core import ExerciseError


def call(fn: Callable, what: str, *args, hint: str = ""):
    """``fn(*args)``; an exception inside the student's code becomes an :class:`ExerciseError` that says where it came from.

    The original exception stays attached (``raise ... from``), so its traceback still shows the line.
    """
    if not callable(fn):
        raise ExerciseError(f"{what} should be a function; got {type(fn).__name__}")
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as e:  # the student's code failed: say so, with a pointer, and keep the cause
        message = str(e).rstrip(". ")
        raise ExerciseError(f"{what} raised {type(e).__name__}: {message}" + (f". {hint}" if hint else "")) from e


def as_tensor(x, what: str) -> torch.Tensor:
    """A number or tensor the student returned, as a float tensor (numbers from numpy or Python are fine)."""
    if torch.is_tensor(x):
        return x
    try:
        return torch.as_tensor(float(x))
    except (TypeError, ValueError):
        raise ExerciseError(f"{what} should return a number, but it returned {type(x).__name__}") from None


def needs_grad(got: torch.Tensor, what: str, of: str) -> None:
    """Raise unless ``got`` is part of a graph: its gradient must reach ``of``."""
    if not got.requires_grad:
        raise ExerciseError(f"{what}: the result carries no gradient, so {of} would not learn from it. A detach(), "
                            "a torch.no_grad() block or a conversion to numpy or .item() cut the graph; keep the "
                            "computation in torch tensors")


def grads(loss: torch.Tensor, params) -> list[torch.Tensor | None]:
    """The gradients of ``loss`` with respect to ``params`` (None where it does not reach)."""
    params = list(params)
    return list(torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True))


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().float(), b.detach().float(), atol=atol, rtol=rtol)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- network blocks (02-06)


def built_block(fn: Callable, what: str, *args) -> torch.nn.Module:
    """``fn(*args)`` under a fixed seed (the caller's random state untouched); refused unless it is a module."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = fn(*args)
    if not isinstance(block, torch.nn.Module):
        raise ExerciseError(f"{what} should return a network module (an nn.Sequential of its layers), not "
                            f"{type(block).__name__}")
    return block


def leaves(block: torch.nn.Module) -> list[torch.nn.Module]:
    """The block's layers in order, nested containers opened."""
    return [m for m in block.modules() if not list(m.children())]


def check_layer_order(layers, conv, norm, label: str, unit: str = "the block") -> None:
    """Refuse a block whose layers are not the convolution, then its norm, then one activation."""
    kinds = ["conv" if m is conv else "norm" if m is norm else "act" for m in layers]
    if kinds != ["conv", "norm", "act"]:
        raise ExerciseError(f"{label}'s layers come in the order {', '.join(type(m).__name__ for m in layers)}; "
                            f"{unit} is the convolution, then its normalisation, then the activation")


def check_same_numbers(block: torch.nn.Module, make_reference: Callable, x: torch.Tensor, label: str) -> None:
    """Give ``block`` the reference's weights, parameter by parameter, and compare the two outputs on ``x``."""
    from .core import check_close

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref = make_reference()
    with torch.no_grad():
        for mine, theirs in zip(block.parameters(), ref.parameters()):
            mine.copy_(theirs)
    block.train()
    ref.train()
    check_close(block(x), ref(x), label, atol=1e-5, rtol=1e-4)
