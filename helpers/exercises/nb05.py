"""Checks for notebook 05's exercises: the encoder's down-block, its two losses and one step of latent refinement.

Each ``check_*`` takes the student's function, runs it and the reference (:mod:`helpers.encoder`)
on random inputs and tiny networks, and raises :class:`ExerciseError` naming the mistake.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..cdcgan import frozen_generator
from ..dcgan import Generator
from ..encoder import Encoder, down_block, image_loss, latent_loss, refine_step
from ._shared import (built_block, call, check_layer_order, check_same_numbers, close, grads, leaves, needs_grad,
                      seeded)
from .core import ExerciseError, check_close, exercise_check, passed

NZ, SIZE, K = 8, 8, 2  # the tiny generator and encoder of these checks


def _tiny_generator(seed: int = 0) -> Generator:
    """A small conditional DCGAN generator, frozen for inversion as notebook 05's is."""
    torch.manual_seed(seed)
    return frozen_generator(Generator(NZ, 4, K, SIZE), n_batches=2, batch_size=8, seed=seed)


def _tiny_encoder(seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    return Encoder(NZ, 4, SIZE).eval()  # eval: the check must not depend on the batch or change running statistics


@exercise_check
def check_latent_loss(fn) -> str:
    """``fn(z_hat, z)``: the mean squared error between the encoder's guesses and the true noise."""
    what = "latent_loss"
    g = seeded(0)
    z = torch.randn(6, 10, generator=g)
    z_hat = (z + 0.7 * torch.randn(6, 10, generator=g)).requires_grad_(True)
    got = call(fn, what, z_hat, z)
    want = latent_loss(z_hat, z)
    d = z_hat - z
    check_close(got, want, what, {
        "you summed every squared difference; average them (the seed's 'about 0.6' is a mean over every "
        "coordinate and face)": lambda: d.pow(2).sum(),
        "you summed over the noise coordinates and averaged over the faces; average over both (F.mse_loss's "
        "default)": lambda: d.pow(2).sum(1).mean(),
        "that is the mean *absolute* error; the noise-space loss squares the differences": lambda: d.abs().mean(),
        "you took a square root (an RMSE or a norm); the loss is the mean of the squares":
            lambda: d.pow(2).mean().sqrt(),
        "you averaged each face's distance |z_hat - z| without squaring it": lambda: d.norm(dim=1).mean(),
        "the sign is flipped: the encoder would move its guesses away from the true noise":
            lambda: -d.pow(2).mean(),
    })
    needs_grad(got, what, "the encoder")
    return passed(what)


@exercise_check
def check_image_loss(fn) -> str:
    """``fn(E, G, real, labels)``: the mean L1 of ``G(E(real), labels)`` against ``real``, with E's gradient."""
    what = "image_loss"
    G, E = _tiny_generator(), _tiny_encoder()
    g = seeded(1)
    real = torch.rand(4, 3, SIZE, SIZE, generator=g) * 2 - 1
    labels = torch.tensor([0, 1, 1, 0])
    got = call(fn, what, E, G, real, labels)
    want = image_loss(E, G, real, labels)

    def rec(y):
        with torch.no_grad():
            return G(E(real), y)

    check_close(got, want, what, {
        "the reconstruction was drawn with the wrong age label: redraw each face with its own group, "
        "G(E(x), s)": lambda: F.l1_loss(rec(1 - labels), real),
        "the reconstruction was drawn with group 0 for every face: use each face's own group, the labels":
            lambda: F.l1_loss(rec(torch.zeros_like(labels)), real),
        "that is a squared error; this loss is the mean *absolute* error (L1), which blurs less":
            lambda: F.mse_loss(rec(labels), real),
        "you summed the absolute errors; average them (F.l1_loss's default)":
            lambda: F.l1_loss(rec(labels), real, reduction="sum"),
        "the sign is flipped: the encoder would move the reconstructions away from the faces":
            lambda: -F.l1_loss(rec(labels), real),
    })
    needs_grad(got, what, "the encoder")
    got_g, want_g = grads(got, E.parameters()), grads(want, E.parameters())
    if all(a is None for a in got_g):
        raise ExerciseError(f"{what}: no gradient reaches the encoder's weights. The loss must be computed from "
                            "E(real) itself (no detach, no torch.no_grad()), through the generator")
    if not all(a is not None and close(a, b, atol=1e-6) for a, b in zip(got_g, want_g)):
        raise ExerciseError(f"{what} has the right value, but its gradient for the encoder differs from the "
                            "reference's; compute it as one expression of E(real), through G")
    return passed(what)


def _variant_step(G, z, x, y, opt, lambda_prior, *, err_fn=None, prior_sign=1.0, reduce="sum", zero=True,
                  step=True, ascend=False):
    """The reference step with one thing changed: what each mistake would do (for the diagnoses)."""
    err = err_fn(G(z, y), x) if err_fn else (G(z, y) - x).abs().flatten(1).mean(1)
    per_face = err + prior_sign * lambda_prior * z.pow(2).mean(1)
    loss = per_face.sum() if reduce == "sum" else per_face.mean()
    if ascend:
        loss = -loss
    if zero:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    if step:
        opt.step()
    return err.detach()


@exercise_check
def check_refine_step(fn) -> str:
    """``fn(G, z, x, y, opt, lambda_prior)``: one optimiser step on ``z``; returns each face's error ``(B,)`` before it."""
    what = "refine_step"
    G = _tiny_generator(2)
    g = seeded(3)
    x = torch.rand(3, 3, SIZE, SIZE, generator=g) * 2 - 1
    y = torch.tensor([0, 1, 0])
    z0 = torch.randn(3, NZ, generator=g) * 2
    lam = 0.5  # large enough that the prior term shows in the update

    def run(step_fn, n_steps):
        """``n_steps`` steps of ``step_fn`` with plain SGD (its update is the gradient itself: mistakes show)."""
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.SGD([z], lr=0.5)
        errs, zs = [], []
        for _ in range(n_steps):
            errs.append(step_fn(G, z, x, y, opt, lam))
            zs.append(z.detach().clone())
        return errs, zs

    got_errs, got_zs = run(lambda *a: call(fn, what, *a), 2)
    want_errs, want_zs = run(refine_step, 2)
    err = got_errs[0]
    if not torch.is_tensor(err):
        raise ExerciseError(f"{what} should return each face's error as a tensor of shape (B,), got {type(err).__name__}")
    if err.shape != want_errs[0].shape:
        raise ExerciseError(f"{what} returned shape {tuple(err.shape)}; return each face's own error, shape "
                            f"{tuple(want_errs[0].shape)} (a mean over its pixels, not over the faces)")
    if err.requires_grad:
        raise ExerciseError(f"{what} returned errors that still carry the graph: return them detached from it")
    if torch.equal(got_zs[0], z0):
        raise ExerciseError(f"{what} did not move z: after the backward pass, step the optimiser")

    def variant(**kw):
        return lambda: run(lambda *a: _variant_step(*a, **kw), 1)[1][0]

    check_close(got_zs[0], want_zs[0], f"{what} (z after one step)", {
        "the prior term is missing: add lambda_prior times the mean of z squared (over its coordinates) to each "
        "face's error":
            variant(prior_sign=0.0),
        "the prior term has the wrong sign: it must pull z towards 0, so add it": variant(prior_sign=-1.0),
        "you averaged the faces' losses: with a mean each face's gradient shrinks with the batch size; sum them":
            variant(reduce="mean"),
        "that is a squared error; each face's error is its mean *absolute* error":
            variant(err_fn=lambda a, b: (a - b).pow(2).flatten(1).mean(1)),
        "z moved uphill: minimise the loss (no minus sign)": variant(ascend=True),
    })
    check_close(got_errs[0], want_errs[0], f"{what} (the errors it returns)", {
        "you returned the errors after the step; return those computed before it (the ones the step descended)":
            lambda: (G(got_zs[0], y) - x).abs().flatten(1).mean(1),
        "the errors include the prior term; return the reconstruction error alone":
            lambda: (G(z0, y) - x).abs().flatten(1).mean(1) + lam * z0.pow(2).mean(1),
    })
    if not close(got_zs[1], want_zs[1]):
        piled = run(lambda *a: _variant_step(*a, zero=False), 2)[1][1]
        if close(got_zs[1], piled):
            raise ExerciseError(f"{what}: the first step is right, but the second adds the first step's gradient "
                                "again: clear the gradient before each backward pass")
        raise ExerciseError(f"{what}: the first step is right but the second is not; each call must do exactly "
                            "one step, from the current z")
    return passed(what)


@exercise_check
def check_down_block(fn) -> str:
    """``fn(c_in, c_out, kernel_size)`` against :func:`helpers.encoder.down_block`: layers, halved size, numbers."""
    what = "down_block"
    for c_in, c_out, k, H in ((3, 4, 5, 16), (4, 6, 3, 10)):
        label = f"{what}({c_in}, {c_out}, kernel_size={k})"
        block = built_block(fn, what, c_in, c_out, k)
        layers = leaves(block)
        convs = [m for m in layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        if len(convs) != 1:
            raise ExerciseError(f"{label} has {len(convs)} convolutions; one step of the encoder has exactly one, "
                                "followed by its normalisation and activation")
        conv = convs[0]
        if isinstance(conv, nn.ConvTranspose2d):
            raise ExerciseError(f"{label}: a transposed convolution grows the image (the generator's way); the "
                                "encoder shrinks a face to a noise vector, with ordinary strided convolutions")
        if (conv.in_channels, conv.out_channels) != (c_in, c_out):
            raise ExerciseError(f"{label}: the convolution maps {conv.in_channels} channels to {conv.out_channels}; "
                                "it takes c_in and gives c_out")
        if conv.kernel_size[0] != k:
            raise ExerciseError(f"{label}: a {conv.kernel_size[0]}x{conv.kernel_size[0]} kernel; the block uses the "
                                "kernel_size it is given (the seed's encoder: 5x5)")
        x = torch.randn(2, c_in, H, H, generator=torch.Generator().manual_seed(1))
        block.train()
        out = block(x)
        if tuple(out.shape[-2:]) != (H // 2, H // 2):
            st, pd = conv.stride[0], conv.padding[0] if isinstance(conv.padding, tuple) else conv.padding
            if st != 2:
                raise ExerciseError(f"{label}: a {H}x{H} map came out {out.shape[-2]}x{out.shape[-1]}, not "
                                    f"{H // 2}x{H // 2}: with stride {st} the block does not halve the size")
            raise ExerciseError(f"{label}: a {H}x{H} map came out {out.shape[-2]}x{out.shape[-1]}, not "
                                f"{H // 2}x{H // 2}: the padding ({pd}) does not suit a {k}x{k} kernel. A convolution "
                                "turns H into floor((H + 2 x padding - kernel) / stride) + 1; the padding must "
                                "follow the kernel size, not be fixed")
        norms = [m for m in layers if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm))]
        if not norms:
            raise ExerciseError(f"{label} has no normalisation: the seed's encoder puts a batch norm after every "
                                "convolution")
        if not isinstance(norms[0], nn.BatchNorm2d) or norms[0].num_features != c_out:
            raise ExerciseError(f"{label}: the norm is {type(norms[0]).__name__}({getattr(norms[0], 'num_features', '')}); "
                                "the seed's encoder uses batch norm over the convolution's c_out channels")
        acts = [m for m in layers if m is not conv and not any(m is n for n in norms)]
        if not acts:
            raise ExerciseError(f"{label} has no activation: the stacked steps would be one linear map, and no "
                                "linear map of the pixels finds the noise that drew a face")
        if not isinstance(acts[0], nn.ReLU):
            raise ExerciseError(f"{label} uses {type(acts[0]).__name__}; the seed's encoder uses ReLU (the sigmoid "
                                "and tanh squash and slow learning; the linear layer at the end makes the unbounded "
                                "noise)")
        if conv.bias is not None:
            raise ExerciseError(f"{label}: the convolution has a bias, which the batch norm right after it removes "
                                "(it subtracts each channel's mean): a parameter that cannot learn. Leave it out")
        check_layer_order(layers, conv, norms[0], label, unit="a step")
        check_same_numbers(block, lambda: down_block(c_in, c_out, k), x, label)
    return passed(what)
