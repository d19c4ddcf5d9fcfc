"""Checks for notebook 06's exercises: AdaIN, the modulated residual block, the two age-classification
losses, the cycle back to the source age, and the real-face setting's auxiliary classifier loss.

Each ``check_*`` takes the student's function, runs it and the reference (:mod:`helpers.agegan`)
on random inputs and a tiny generator, and raises :class:`ExerciseError` naming the mistake.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..agegan import (AgeGenerator, _ModulatedResBlock, adain, age_loss_D, age_loss_G, aux_loss_C, cycle_loss,
                      modulated_res_block, random_targets)
from ._shared import call, close, grads, needs_grad, seeded
from .core import ExerciseError, check_close, exercise_check, passed


@exercise_check
def check_adain(fn) -> str:
    """``fn(x, gamma, beta)``: ``(1 + gamma) * instance_norm(x) + beta``, for ``x`` ``(B, C, H, W)``, ``gamma, beta`` ``(B, C)``."""
    what = "adain"
    g = seeded(0)
    B, C, H, W = 3, 5, 6, 4
    x = torch.randn(B, C, H, W, generator=g) * 3 + torch.randn(B, C, 1, 1, generator=g) * 2  # means and spreads vary
    gamma = (0.5 * torch.randn(B, C, generator=g)).requires_grad_(True)
    beta = (0.5 * torch.randn(B, C, generator=g)).requires_grad_(True)
    got = call(fn, what, x, gamma, beta,
               hint="gamma and beta are (B, C): give them two trailing axes of size 1, so that they broadcast "
                    "over the image's height and width")
    want = adain(x, gamma, beta)
    gb, bb = gamma[:, :, None, None], beta[:, :, None, None]

    def norm(dims, unbiased=False):
        mu = x.mean(dims, keepdim=True)
        return (x - mu) / (x.var(dims, keepdim=True, unbiased=unbiased) + 1e-5).sqrt()

    inorm = norm((2, 3))
    check_close(got, want, what, {
        "the scale is gamma; it is (1 + gamma), so that gamma = 0 leaves the normalised features unchanged":
            lambda: inorm * gb + bb,
        "the features are not normalised: instance norm first (each face's channel to mean 0, variance 1 over "
        "the image), then scale and shift": lambda: x * (1 + gb) + bb,
        "you subtracted the mean but did not divide by the spread": lambda: (x - x.mean((2, 3), keepdim=True)) * (1 + gb) + bb,
        "gamma and beta are swapped: (1 + gamma) scales, beta shifts": lambda: inorm * (1 + bb) + gb,
        "you normalised over the channels too (a layer norm); instance norm takes each channel of each face on its "
        "own: mean and variance over H and W (dims 2, 3)": lambda: norm((1, 2, 3)) * (1 + gb) + bb,
        "you normalised over the batch (a batch norm); instance norm takes each face on its own: dims 2 and 3":
            lambda: norm((0, 2, 3)) * (1 + gb) + bb,
        "you divided by the unbiased standard deviation (torch.std's and torch.var's default); instance norm uses "
        "the biased variance (divided by H x W, not H x W - 1), plus eps = 1e-5":
            lambda: norm((2, 3), unbiased=True) * (1 + gb) + bb,
    })
    needs_grad(got, what, "the age modulator")
    got_g = grads(got.sum(), [gamma, beta])
    if any(a is None for a in got_g):
        raise ExerciseError(f"{what}: gamma or beta gets no gradient, so the age modulator would never learn; do not "
                            "detach them")
    return passed(what)


def _logits(seed: int, B: int = 8, K: int = 4):
    g = seeded(seed)
    logits = (2 * torch.randn(B, K, generator=g)).requires_grad_(True)
    source = torch.randint(0, K, (B,), generator=g)
    target = random_targets(source, K, g)
    return logits, source, target



@exercise_check
def check_res_block(fn) -> str:
    """``fn(block, h, mod1, mod2)``: the forward pass of a modulated residual block (conv, AdaIN, ReLU, conv, AdaIN, plus h)."""
    what = "modulated_res_block"
    g = seeded(3)
    C = 4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = _ModulatedResBlock(C)
    h = torch.randn(2, C, 5, 5, generator=g).requires_grad_(True)
    mod1 = tuple((0.5 * torch.randn(2, C, generator=g)).requires_grad_(True) for _ in range(2))
    mod2 = tuple((0.5 * torch.randn(2, C, generator=g) + 0.3).requires_grad_(True) for _ in range(2))
    got = call(fn, what, block, h, mod1, mod2,
               hint="block.norm1 and block.norm2 are called as norm(x, gamma, beta): unpack each (gamma, beta) pair")
    want = modulated_res_block(block, h, mod1, mod2)
    c1, n1, c2, n2 = block.conv1, block.norm1, block.conv2, block.norm2

    def branch(first=mod1, second=mod2, relu_mid=True):
        y = n1(c1(h), *first)
        return n2(c2(F.relu(y) if relu_mid else y), *second)

    check_close(got, want, what, {
        "there is no skip connection: the block returns only its branch. A residual block adds its change to h, "
        "so that it starts close to leaving the features as they are": lambda: branch(),
        "a ReLU follows the sum. Then the block could never make a feature negative: nothing follows the sum, so "
        "that the block only adds a change": lambda: F.relu(h + branch()),
        "the branch ends in a ReLU, so it can only add, never take away: the second norm's output goes straight "
        "into the sum": lambda: h + F.relu(branch()),
        "mod1 and mod2 are swapped: the first norm takes the first pair": lambda: h + branch(mod2, mod1),
        "both norms take the same (gamma, beta): each AdaIN has its own pair, mod1 for the first and mod2 for "
        "the second": lambda: h + branch(mod1, mod1),
        "the same pair twice (mod2): each AdaIN has its own pair, mod1 for the first and mod2 for the second":
            lambda: h + branch(mod2, mod2),
        "the ReLU between the two convolutions is missing: without it the two convolutions collapse into one "
        "linear map between the norms": lambda: h + branch(relu_mid=False),
        "the norms come before their convolutions: each convolution's output is what its AdaIN normalises":
            lambda: h + c2(n2(F.relu(c1(n1(h, *mod1))), *mod2)),
    })
    needs_grad(got, what, "the generator")
    inputs = [h, *mod1, *mod2, *block.parameters()]
    g_got, g_want = grads(got.sum(), inputs), grads(want.sum(), inputs)
    if any(a is None for a in g_got):
        raise ExerciseError(f"{what}: part of the block gets no gradient (an input, a (gamma, beta) pair or a "
                            "convolution was detached or left out)")
    if not close(g_got[0], g_want[0]):
        raise ExerciseError(f"{what}: the right numbers, but h gets the wrong gradient: the skip connection was "
                            "detached. Through the skip, the layers below the block get their gradient unchanged, "
                            "which is what lets deep generators train; keep it in the graph")
    return passed(what)


@exercise_check
def check_age_loss_D(fn) -> str:
    """``fn(real_logits, source, fake_logits, target)``: the age head's cross-entropy on the *real* faces and their groups."""
    what = "age_loss_D"
    real_logits, source, target = _logits(0)
    fake_logits, _, _ = _logits(1)
    got = call(fn, what, real_logits, source, fake_logits, target)
    want = age_loss_D(real_logits, source, fake_logits, target)
    ce = F.cross_entropy
    check_close(got, want, what, {
        "you also taught the age head on the fakes (AC-GAN does). Here it learns from real faces only: fakes "
        "that fail would teach it that their look is the target age": lambda: ce(real_logits, source) + ce(fake_logits, target),
        "you averaged the real and the fake terms; the age head learns from real faces only":
            lambda: (ce(real_logits, source) + ce(fake_logits, target)) / 2,
        "you used the fakes and their targets; the age head learns on the *real* faces with their own groups":
            lambda: ce(fake_logits, target),
        "the real faces were scored against the targets; their right answer is their own group, source":
            lambda: ce(real_logits, target),
        "you summed over the faces; average them (F.cross_entropy's default)":
            lambda: ce(real_logits, source, reduction="sum"),
        "you applied a softmax before F.cross_entropy, which applies its own: pass the logits":
            lambda: ce(real_logits.softmax(1), source),
        "F.nll_loss needs log-probabilities; on logits use F.cross_entropy": lambda: F.nll_loss(real_logits, source),
        "the sign is flipped: the age head would learn to misread the faces": lambda: -ce(real_logits, source),
    })
    needs_grad(got, what, "the discriminator's age head")
    return passed(what)


@exercise_check
def check_age_loss_G(fn) -> str:
    """``fn(fake_logits, source, target)``: the age head's cross-entropy on the fakes against their *target* groups."""
    what = "age_loss_G"
    fake_logits, source, target = _logits(2)
    got = call(fn, what, fake_logits, source, target)
    want = age_loss_G(fake_logits, source, target)
    ce = F.cross_entropy
    check_close(got, want, what, {
        "the fakes were scored against their source groups; the generator wants them read as the *target* age":
            lambda: ce(fake_logits, source),
        "you pushed the fakes away from their source group (a minus sign); that does not say which age to go to. "
        "Pull them towards the target instead": lambda: -ce(fake_logits, source),
        "the sign is flipped: the generator would avoid the target age": lambda: -ce(fake_logits, target),
        "you summed over the faces; average them (F.cross_entropy's default)":
            lambda: ce(fake_logits, target, reduction="sum"),
        "you applied a softmax before F.cross_entropy, which applies its own: pass the logits":
            lambda: ce(fake_logits.softmax(1), target),
        "F.nll_loss needs log-probabilities; on logits use F.cross_entropy": lambda: F.nll_loss(fake_logits, target),
    })
    needs_grad(got, what, "the generator")
    return passed(what)


@exercise_check
def check_cycle_loss(fn) -> str:
    """``fn(G_back, real, source, fake, target)``: the mean L1 of ``G_back(fake, source)`` against ``real``, fake not detached."""
    what = "cycle_loss"
    K = 3
    torch.manual_seed(0)
    G = AgeGenerator(K, ngf=4, n_enc_blocks=1, n_dec_blocks=1, style_dim=8)
    g = seeded(4)
    real = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    source = torch.tensor([0, 1, 2, 0])
    target = random_targets(source, K, g)
    with torch.no_grad():
        fake0 = G(real, target)
    fake = fake0.clone().requires_grad_(True)  # a leaf here, so the check sees whether the gradient reaches it
    got = call(fn, what, G, real, source, fake, target)
    want = cycle_loss(G, real, source, fake, target)

    def back(x, t):
        with torch.no_grad():
            return G(x, t)

    check_close(got, want, what, {
        "you sent the fake to its target age again; the cycle goes back to the *source* age, G_back(fake, source)":
            lambda: F.l1_loss(back(fake0, target), real),
        "that is the identity term (the real face asked for its own age); the cycle starts from the fake":
            lambda: F.l1_loss(back(real, source), real),
        "you compared the round trip with the fake; it must come back to the real face":
            lambda: F.l1_loss(back(fake0, source), fake0),
        "you compared the fake itself with the real face; send it back to the source age first":
            lambda: F.l1_loss(fake0, real),
        "that is a squared error; the cycle term is the mean *absolute* error (L1)":
            lambda: F.mse_loss(back(fake0, source), real),
        "you summed the absolute errors; average them (F.l1_loss's default)":
            lambda: F.l1_loss(back(fake0, source), real, reduction="sum"),
    })
    needs_grad(got, what, "the generator")
    (d_fake,) = grads(got, [fake])
    if d_fake is None:
        raise ExerciseError(f"{what}: no gradient reaches the fake, so the first trip G(x, t) would not learn to keep "
                            "the person; do not detach the fake here (only the discriminator's step detaches it)")
    (want_d,) = grads(want, [fake])
    if not close(d_fake, want_d, atol=1e-6):
        raise ExerciseError(f"{what} has the right value but the wrong gradient for the fake; compute it as one "
                            "expression of the round trip of the fake itself, with no detached or copied tensors")
    return passed(what)


@exercise_check
def check_aux_loss_C(fn) -> str:
    """``fn(real_logits, source, fake_logits, target)``: cross-entropy over real faces and fakes, both as their *source* groups."""
    what = "aux_loss_C"
    real_logits, source, target = _logits(5)
    fake_logits, _, _ = _logits(6)
    got = call(fn, what, real_logits, source, fake_logits, target)
    want = aux_loss_C(real_logits, source, fake_logits, target)
    ce = F.cross_entropy
    check_close(got, want, what, {
        "you labelled the fakes with their targets: the classifier then learns whatever the generator paints as "
        "the target age, and helps it cheat with patterns. Label them with the group they came from, source":
            lambda: (ce(real_logits, source) + ce(fake_logits, target)) / 2,
        "you labelled the fakes with their targets and summed the two terms; label them with source, and average "
        "over all the faces": lambda: ce(real_logits, source) + ce(fake_logits, target),
        "only the real faces: then a pattern that fools the classifier keeps paying. Also teach it the fakes, as "
        "their source groups": lambda: ce(real_logits, source),
        "only the fakes: the classifier must still learn the real faces' groups": lambda: ce(fake_logits, source),
        "you added the two terms; average over all the faces (the mean of the two, or F.cross_entropy on them "
        "concatenated)": lambda: ce(real_logits, source) + ce(fake_logits, source),
        "you pushed the fakes away from their targets (a minus sign); teach the classifier their source group "
        "instead, so that the true answer is a group it can learn": lambda: (ce(real_logits, source) - ce(fake_logits, target)) / 2,
        "you summed over the faces; average them (F.cross_entropy's default)":
            lambda: ce(torch.cat([real_logits, fake_logits]), torch.cat([source, source]), reduction="sum"),
        "you applied a softmax before F.cross_entropy, which applies its own: pass the logits":
            lambda: ce(torch.cat([real_logits, fake_logits]).softmax(1), torch.cat([source, source])),
    })
    needs_grad(got, what, "the auxiliary classifier")
    return passed(what)
