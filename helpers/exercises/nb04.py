"""Checks for notebook 04's exercises: the one-hot label on the generator's noise and on the
discriminator's feature maps, the generator's input block, and the paired label test.

Each ``check_*`` takes the student's function, runs it and the reference (:mod:`helpers.dcgan`,
:mod:`helpers.cdcgan`) on random inputs, and raises :class:`ExerciseError` naming the mistake.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cdcgan import paired_rate
from ..dcgan import condition_features, condition_noise, input_block
from ._shared import as_tensor, built_block, call, check_layer_order, check_same_numbers, leaves, seeded
from .core import ExerciseError, check_close, exercise_check, passed


_ONE_HOT_WIDTH = (
    "{what}: the one-hot part has {n} entries for {K} classes: as many as the largest label *in this batch* plus "
    "one. A batch without the oldest groups (generating one age at a time does that) then gives the network too "
    "few inputs, and it fails far from here with a channel count error. The width must always be n_classes: tell "
    "the one-hot encoding how many classes there are")


@exercise_check
def check_condition_noise(fn) -> str:
    """``fn(z, labels, n_classes)`` must return ``[z; onehot(labels)]``, shape ``(B, nz + n_classes)``."""
    what = "condition_noise"
    # two sizes (nothing may be hard-coded), then a batch without the last groups: generating one age at a time
    for B, nz, K, seed, every in [(5, 7, 3, 0, True), (4, 6, 2, 1, True), (4, 6, 5, 2, False)]:
        g = seeded(seed)
        z = torch.randn(B, nz, generator=g)
        labels = torch.randint(0, K, (B,), generator=g)
        if every:
            labels[:K] = torch.arange(K)  # every class at least once
        else:
            labels = torch.tensor([0, 2, 1, 2])[:B]  # groups 3 and 4 missing
        z_before = z.clone()
        got = call(fn, what, z, labels, K)
        if torch.is_tensor(got) and got.dim() == 2 and got.shape[0] == B and got.shape[1] != nz + K:
            n = got.shape[1]
            if n == nz + int(labels.max()) + 1:
                raise ExerciseError(_ONE_HOT_WIDTH.format(what=what, n=n - nz, K=K))
            if n == nz:
                raise ExerciseError(f"{what} returned only the noise, shape {tuple(got.shape)}: join the one-hot label "
                                    "to it, along the features (dim 1)")
            if n == K:
                raise ExerciseError(f"{what} returned only the one-hot label: join it to the noise z")
            if n == nz + 1:
                raise ExerciseError(f"{what} appended the label as a single number; the generator reads a one-hot "
                                    f"row of length n_classes ({K} here), a single 1 at the label's index")
        if not torch.equal(z, z_before):
            raise ExerciseError(f"{what} changed z in place; build a new tensor instead (z is the caller's noise)")
        want = condition_noise(z, labels, K)
        onehot = F.one_hot(labels, K).float()
        check_close(got, want, what, {
            "the one-hot comes first and the noise second; the generator's weights (and notebook 08's loader) expect "
            "the noise first, [z; onehot(y)]": lambda: torch.cat([onehot, z], dim=1),
            "the label part is all ones or all zeros: one-hot means a single 1, at the label's index":
                lambda: torch.cat([z, torch.ones(B, K)], dim=1),
            "the one-hot rows are flipped (a 1 where the label is not): a one-hot row is 1 at the label's index only":
                lambda: torch.cat([z, 1 - onehot], dim=1),
        })
        if not got.is_floating_point():
            raise ExerciseError(f"{what} returned {got.dtype}; the generator needs floats, of z's dtype")
    return passed(what)


@exercise_check
def check_condition_features(fn) -> str:
    """``fn(h, labels, n_classes)`` must append ``n_classes`` constant maps to ``h``: ``(B, C + n_classes, H, W)``."""
    what = "condition_features"
    for B, C, H, W, K, seed, every in [(4, 6, 5, 3, 3, 0, True), (3, 4, 4, 4, 2, 1, True), (4, 5, 3, 3, 5, 2, False)]:
        g = seeded(seed)
        h = torch.randn(B, C, H, W, generator=g)
        labels = torch.randint(0, K, (B,), generator=g)
        if every:
            labels[:K] = torch.arange(K)
        else:
            labels = torch.tensor([1, 0, 2, 0])[:B]  # groups 3 and 4 missing
        got = call(fn, what, h, labels, K,
                   hint="The label maps must be as tall and wide as h before they are joined to it: give the "
                        "one-hot two trailing axes of size 1 and expand them to h's height and width")
        if torch.is_tensor(got) and got.dim() == 4 and got.shape[0] == B and got.shape[1] != C + K:
            if got.shape[1] == C + int(labels.max()) + 1:
                raise ExerciseError(_ONE_HOT_WIDTH.format(what=what, n=got.shape[1] - C, K=K))
            if got.shape[1] == C + 1:
                raise ExerciseError(f"{what} added one map holding the label's number; add {K} maps, one per class "
                                    "(map k is 1 where the label is k, 0 elsewhere)")
            if got.shape[1] == C:
                raise ExerciseError(f"{what} returned as many channels as h: the label maps are missing")
        if torch.is_tensor(got) and got.dim() == 4 and got.shape[:2] == (B, C + K) and got.shape[2:] != (H, W):
            raise ExerciseError(f"{what} returned maps of size {tuple(got.shape[2:])}; they must keep h's size {(H, W)}")
        if torch.is_tensor(got) and got.dim() == 4 and got.shape[0] != B:
            raise ExerciseError(f"{what} changed the batch size to {got.shape[0]} (expected {B}): join the maps along "
                                "the channels, dim=1, not along the batch")
        want = condition_features(h, labels, K)
        maps = F.one_hot(labels, K).float()[:, :, None, None].expand(-1, -1, H, W)
        check_close(got, want, what, {
            "the label maps come before the features; they go after them, [h; maps]":
                lambda: torch.cat([maps, h], dim=1),
            "every label map is all ones: map k must be 1 only for faces whose label is k":
                lambda: torch.cat([h, torch.ones(B, K, H, W)], dim=1),
            "the maps are 1 where the label is *not* k: use the one-hot itself":
                lambda: torch.cat([h, 1 - maps], dim=1),
        })
    return passed(what)


@exercise_check
def check_paired_rate(fn) -> str:
    """``fn(pred)``, ``pred[k, i]`` the group read in ``G(z_i, k)`` (shape ``(K, n)``), must return the paired score."""
    what = "paired_rate"
    rng = np.random.default_rng(0)
    cases = []
    for K, n in [(2, 40), (3, 30)]:
        pred = rng.integers(0, K, (K, n))
        pred[:, : n // 4] = np.arange(K)[:, None]  # some vectors follow every label
        pred[:, n // 4: n // 2] = pred[0, n // 4: n // 2]  # and some ignore it (the same group in every row)
        cases.append(pred)
    for pred in cases:
        K = pred.shape[0]
        hit = pred == np.arange(K)[:, None]
        got = as_tensor(call(fn, what, pred.copy()), what).float()
        want = torch.tensor(paired_rate(pred))
        check_close(got.reshape(()) if got.numel() == 1 else got, want, what, {
            "you counted a noise vector when *any* label was followed; the test asks that *every* label is "
            "followed (all over the labels, axis 0)": lambda: torch.tensor(hit.any(0).mean()),
            "you averaged over every face of the grid: that is the label agreement, not the paired test; a noise "
            "vector counts only when all its rows follow their labels": lambda: torch.tensor(hit.mean()),
            "you returned a count; return the fraction of noise vectors (divide by n, or take the mean)":
                lambda: torch.tensor(float(hit.all(0).sum())),
            "you took all() over the noise vectors (axis 1); take it over the labels (axis 0), then average over "
            "the noise vectors": lambda: torch.tensor(hit.all(1).mean()),
        })
    return passed(what)


@exercise_check
def check_input_block(fn) -> str:
    """``fn(nz, n_classes, c_out)`` against :func:`helpers.dcgan.input_block`: layers, the 4x4 output, its numbers."""
    what = "input_block"
    nz, K, c_out, B = 5, 3, 6, 3
    label = f"{what}({nz}, {K}, {c_out})"
    block = built_block(fn, what, nz, K, c_out)
    layers = leaves(block)
    if any(isinstance(m, nn.Linear) for m in layers):
        raise ExerciseError(f"{label} uses a linear layer. A linear layer and a reshape could do this job, but "
                            "DCGAN's generator is convolutional from its first layer: write it as a transposed "
                            "convolution from the 1x1 input to a 4x4 map")
    convs = [m for m in layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    if len(convs) != 1:
        raise ExerciseError(f"{label} has {len(convs)} convolutions; the input block has exactly one, followed by "
                            "its normalisation and activation")
    conv = convs[0]
    if type(conv) is nn.Conv2d:
        raise ExerciseError(f"{label}: an ordinary convolution shrinks a map, and the input is 1x1; the generator "
                            "grows it, with a transposed convolution")
    if conv.in_channels == nz:
        raise ExerciseError(f"{label}: the convolution reads {nz} channels, the noise alone. The conditional "
                            "generator's input is the noise joined with the one-hot label (exercise 1): "
                            f"nz + n_classes = {nz + K} numbers, or the label never reaches the network")
    if conv.in_channels != nz + K or conv.out_channels != c_out:
        raise ExerciseError(f"{label}: the convolution maps {conv.in_channels} channels to {conv.out_channels}; "
                            f"it reads the conditioned noise ({nz + K} numbers) and gives c_out = {c_out} maps")
    x = torch.randn(B, nz + K, 1, 1, generator=torch.Generator().manual_seed(1))
    block.train()
    out = block(x)
    if tuple(out.shape[-2:]) != (4, 4):
        k, st, pd = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        raise ExerciseError(f"{label}: a 1x1 input came out {out.shape[-2]}x{out.shape[-1]}, not 4x4 (kernel {k}, "
                            f"stride {st}, padding {pd}). A transposed convolution turns a size H into "
                            "(H - 1) x stride - 2 x padding + kernel; with H = 1 only the kernel and the padding "
                            "count. Every later block doubles the 4x4 map")
    if conv.kernel_size[0] != 4:
        raise ExerciseError(f"{label}: 4x4 output, but from a {conv.kernel_size[0]}x{conv.kernel_size[0]} kernel; "
                            "each input number paints one 4x4 pattern: a 4x4 kernel with no padding")
    norms = [m for m in layers if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm))]
    if not norms:
        raise ExerciseError(f"{label} has no normalisation: like every block of the generator but the last, it "
                            "is followed by batch norm, which keeps training stable")
    if not isinstance(norms[0], nn.BatchNorm2d) or norms[0].num_features != c_out:
        raise ExerciseError(f"{label}: the norm is {type(norms[0]).__name__}; DCGAN's recipe is batch norm over "
                            "the convolution's c_out channels")
    acts = [m for m in layers if m is not conv and not any(m is n for n in norms)]
    if not acts:
        raise ExerciseError(f"{label} has no activation: without one, this block and the next form one linear map")
    if isinstance(acts[0], nn.LeakyReLU):
        raise ExerciseError(f"{label}: LeakyReLU is the discriminator's activation; the generator's hidden layers "
                            "use ReLU")
    if isinstance(acts[0], nn.Tanh):
        raise ExerciseError(f"{label}: tanh belongs to the generator's last layer, which puts the image in [-1, 1]; "
                            "a hidden block uses ReLU")
    if not isinstance(acts[0], nn.ReLU):
        raise ExerciseError(f"{label} uses {type(acts[0]).__name__}; the generator's hidden blocks use ReLU")
    if conv.bias is not None:
        raise ExerciseError(f"{label}: the transposed convolution has a bias, which the batch norm right after it "
                            "removes (it subtracts each channel's mean): a parameter that cannot learn. Leave it out")
    check_layer_order(layers, conv, norms[0], label)
    check_same_numbers(block, lambda: input_block(nz, K, c_out), x, label)
    return passed(what)
