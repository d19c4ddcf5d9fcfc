"""Checks for notebook 03's exercises: CycleGAN's losses, the image pool, and the generators' terms.

- :func:`check_lsgan_loss`: ``lsgan_loss(scores, target_is_real)``;
- :func:`check_cycle_loss`: ``cycle_loss(reconstructed, original, weight)``;
- :func:`check_identity_losses`: ``identity_losses(G_AB, G_BA, real_a, real_b, weight) -> dict``;
- :func:`check_pool_query`: ``pool_query(pool, images)``, the history of fakes;
- :func:`check_generator_losses`: ``generator_losses(model, real_a, real_b) -> (losses, fake_a, fake_b)``;
- :func:`check_patch_discriminator`: ``patch_discriminator(ndf, n_layers)``, the discriminators' layers.

The references are :class:`helpers.layers.LSGANLoss`, :class:`helpers.layers.WeightedL1`,
:meth:`helpers.cyclegan.ImagePool.__call__` and :func:`helpers.cyclegan.generator_losses`.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from .. import config, cyclegan
from ..layers import LSGANLoss, WeightedL1
from ._shared import built_block, check_same_numbers
from ._shared import leaves as _leaves
from .core import ExerciseError, check_close, exercise_check, passed


def _images(n=4, size=8, seed=0, grad=False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, size, size, generator=g) * 2 - 1).requires_grad_(grad)


def _differentiable(out, what: str) -> None:
    if torch.is_tensor(out) and not out.requires_grad:
        raise ExerciseError(f"{what}'s result carries no gradient: keep it a tensor computed from its inputs "
                            "(no .item() or .detach()), or the networks cannot learn from it")


@exercise_check
def check_lsgan_loss(fn) -> str:
    """``fn(scores, target_is_real)`` against :class:`helpers.layers.LSGANLoss`, for both targets."""
    what = "lsgan_loss"
    g = torch.Generator().manual_seed(0)
    scores = (torch.randn(4, 1, 6, 6, generator=g) * 0.7 + 0.4).requires_grad_(True)
    ref = LSGANLoss()
    for real in (True, False):
        t, other = (1.0, 0.0) if real else (0.0, 1.0)
        label = f"lsgan_loss(scores, {real})"
        got = fn(scores, real)
        check_close(got, ref(scores, real), label, {
            f"wrong target: with target_is_real={real} the scores are regressed to {t:g}, not {other:g}":
                lambda: (scores - other).pow(2).mean(),
            "you summed over the scores: take the mean (every patch of every image counts the same, "
            "whatever the batch and image size)": lambda: (scores - t).pow(2).sum(),
            "that is the absolute error: LSGAN squares it, (score - target)^2": lambda: (scores - t).abs().mean(),
            "there is a factor 1/2 too many: the 1/2 belongs to the discriminator's total in train_step, "
            "not to the loss": lambda: 0.5 * (scores - t).pow(2).mean(),
            "that is the root of the mean squared error: no square root": lambda: (scores - t).pow(2).mean().sqrt(),
            "that is the log loss of notebook 02 (BCE); LSGAN is the mean of (score - target)^2":
                lambda: F.binary_cross_entropy_with_logits(scores, torch.full_like(scores, t)),
        })
        _differentiable(got, label)
    return passed(what)


@exercise_check
def check_cycle_loss(fn) -> str:
    """``fn(reconstructed, original, weight)`` against :class:`helpers.layers.WeightedL1`."""
    what = "cycle_loss"
    rec, orig = _images(4, 8, 1, grad=True), _images(4, 8, 2)
    for weight in (10.0, 2.5):
        label = f"cycle_loss(reconstructed, original, weight={weight:g})"
        got = fn(rec, orig, weight)
        d = rec - orig
        check_close(got, WeightedL1(weight)(rec, orig), label, {
            "the weight is missing: multiply the L1 error by weight (lambda_cyc)": lambda: d.abs().mean(),
            "that is the squared error (MSE): the cycle loss is the L1 error, mean |reconstructed - original|, "
            "which blurs less": lambda: weight * d.pow(2).mean(),
            "you summed over the pixels: take the mean": lambda: weight * d.abs().sum(),
            "the absolute value is missing: positive and negative errors cancel out": lambda: weight * d.mean(),
        })
        _differentiable(got, label)
    return passed(what)


class _Affine(torch.nn.Module):
    """A stand-in generator that changes every image a known way (so a wrong one shows)."""

    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return self.scale * x + self.shift


@exercise_check
def check_identity_losses(fn) -> str:
    """``fn(G_AB, G_BA, real_a, real_b, weight)`` -> ``{"G_identity_A": ..., "G_identity_B": ...}``."""
    what = "identity_losses"
    G_AB, G_BA = _Affine(0.8, 0.1), _Affine(0.6, -0.2)
    a, b, w = _images(4, 8, 3, grad=True), _images(4, 8, 4, grad=True), 5.0
    out = fn(G_AB, G_BA, a, b, w)
    if not isinstance(out, dict):
        raise ExerciseError(f"{what} should return a dict {{'G_identity_A': ..., 'G_identity_B': ...}}, "
                            f"not {type(out).__name__}")
    keys = {"G_identity_A", "G_identity_B"}
    if set(out) != keys:
        raise ExerciseError(f"{what} returned the keys {sorted(out)}; it should return exactly {sorted(keys)}")
    l1 = lambda x, y: w * (x - y).abs().mean()  # noqa: E731
    check_close(out["G_identity_A"], l1(G_BA(a), a), f"{what}['G_identity_A']", {
        "G_identity_A passes the young face through G_AB: the generator that should leave a young face alone "
        "is the one that *makes* young faces, G_BA": lambda: l1(G_AB(a), a),
        "G_identity_A is computed on the old faces: it is G_BA's test on the young ones, |G_BA(a) - a|":
            lambda: l1(G_BA(b), b),
        "G_identity_A and G_identity_B are swapped": lambda: l1(G_AB(b), b),
        "the weight is missing: multiply the L1 error by weight": lambda: (G_BA(a) - a).abs().mean(),
        "that is the squared error: the identity loss is an L1 error": lambda: w * (G_BA(a) - a).pow(2).mean(),
    })
    check_close(out["G_identity_B"], l1(G_AB(b), b), f"{what}['G_identity_B']", {
        "G_identity_B passes the old face through G_BA: the generator that should leave an old face alone is "
        "the one that *makes* old faces, G_AB": lambda: l1(G_BA(b), b),
        "G_identity_B is computed on the young faces: it is G_AB's test on the old ones, |G_AB(b) - b|":
            lambda: l1(G_AB(a), a),
        "the weight is missing: multiply the L1 error by weight": lambda: (G_AB(b) - b).abs().mean(),
        "that is the squared error: the identity loss is an L1 error": lambda: w * (G_AB(b) - b).pow(2).mean(),
    })
    for k in sorted(keys):
        _differentiable(out[k], f"{what}['{k}']")
    return passed(what)


# --------------------------------------------------------------------------- the image pool


def query_variant(pool, images, *, return_new=False, store_new=True, greater=False, draw_while_filling=False,
                  detach=True):
    """The reference query with one plausible mistake switched on (the tests feed these to the check too)."""
    if detach:
        images = images.detach()
    if pool.size == 0:
        return images
    out = []
    for img in images:
        if len(pool.images) < pool.size:
            if draw_while_filling:
                pool.rng.random()
            pool.images.append(img.clone())
            out.append(img)
            continue
        r = pool.rng.random()
        if (r > 0.5) if greater else (r < 0.5):
            i = pool.rng.randrange(pool.size)
            old = pool.images[i]
            if store_new:
                pool.images[i] = img.clone()
            out.append(img if return_new else old)
        else:
            out.append(img)
    return torch.stack(out)


def _replay(query, size: int = 4) -> torch.Tensor:
    """Six batches of three fakes through a fresh pool of ``size``: every output, then the pool's contents."""
    pool = cyclegan.ImagePool(size, seed=7)
    outs = []
    for k in range(6):
        fakes = _images(3, 4, 20 + k, grad=True) * 1.0  # a non-leaf tensor with a graph, as a generator's output
        out = query(pool, fakes)
        if not torch.is_tensor(out):
            raise ExerciseError(f"pool_query should return a tensor (torch.stack of the images), not {type(out).__name__}")
        if out.requires_grad:
            raise ExerciseError("pool_query's result still carries the generator's graph: detach the fakes "
                                "(images.detach()) before storing or returning them; the discriminators' turn must "
                                "not reach the generators, and stored images would keep old graphs alive")
        if out.shape != fakes.shape:
            raise ExerciseError(f"pool_query returned shape {tuple(out.shape)} for a batch of {tuple(fakes.shape)}: "
                                "return one image for every image that came in")
        outs.append(out.flatten())
    if len(pool.images) != min(size, 18):
        raise ExerciseError(f"after 18 fakes a pool of size {size} should hold {min(size, 18)} images, it holds "
                            f"{len(pool.images)}: store every new image until the pool is full, then only swap")
    stored = torch.stack([torch.as_tensor(x).detach().flatten() for x in pool.images]) if pool.images else torch.empty(0)
    return torch.cat([*outs, stored.flatten()])


@exercise_check
def check_pool_query(fn) -> str:
    """``fn(pool, images)`` against :meth:`helpers.cyclegan.ImagePool.__call__`, batch by batch, with the same random draws."""
    what = "pool_query"
    off = cyclegan.ImagePool(0)
    x = _images(3, 4, 9)
    got = fn(off, x)
    if not torch.is_tensor(got) or got.shape != x.shape or not torch.equal(got.detach(), x):
        raise ExerciseError(f"{what}: a pool of size 0 is switched off and must return the batch as it is")
    got = _replay(fn)
    want = _replay(cyclegan.ImagePool.__call__)
    check_close(got, want, what, {
        "when a stored image is swapped out, return the *stored* (older) image, and keep the new one in its place":
            lambda: _replay(lambda p, i: query_variant(p, i, return_new=True)),
        "a swapped-out image must be replaced by the new one: pool.images[i] = the new image":
            lambda: _replay(lambda p, i: query_variant(p, i, store_new=False)),
        "the coin is the wrong way round: swap when pool.rng.random() < 0.5": lambda: _replay(
            lambda p, i: query_variant(p, i, greater=True)),
        "the random draws come in the wrong order: while the pool is still filling, draw nothing; once it is "
        "full, one pool.rng.random() per image, then pool.rng.randrange(pool.size) only when swapping":
            lambda: _replay(lambda p, i: query_variant(p, i, draw_while_filling=True)),
    }, atol=0, rtol=0)
    return passed(what)


# --------------------------------------------------------------------------- the generators' terms


def _tiny_model(lambda_identity: float) -> cyclegan.CycleGAN:
    s = replace(config.CYCLEGAN, image_size=16, load_size=16, batch_size=2, ngf=4, ndf=4, n_blocks=1,
                lambda_identity=lambda_identity, n_layers_D=2, mask=False, lambda_age=0.0, diffaug="", seed=0)
    return cyclegan.CycleGAN(s)


@exercise_check
def check_generator_losses(fn) -> str:
    """``fn(model, real_a, real_b)`` against :func:`helpers.cyclegan.generator_losses`, with the identity loss on and off."""
    what = "generator_losses"
    a, b = _images(2, 16, 11), _images(2, 16, 12)
    for lam in (0.5, 0.0):
        model = _tiny_model(lam)
        calls = {"gan": 0, "cycle": 0}
        gan_loss, cycle_loss = model.gan_loss, model.cycle_loss
        model.gan_loss = lambda s, t: (calls.__setitem__("gan", calls["gan"] + 1), gan_loss(s, t))[1]
        model.cycle_loss = lambda x, y: (calls.__setitem__("cycle", calls["cycle"] + 1), cycle_loss(x, y))[1]
        out = fn(model, a, b)
        if not (isinstance(out, tuple) and len(out) == 3 and isinstance(out[0], dict)):
            raise ExerciseError(f"{what} should return (losses, fake_a, fake_b): a dict of terms and the two "
                                "translated batches")
        losses, fake_a, fake_b = out
        if calls["gan"] < 2 or calls["cycle"] < 2:
            raise ExerciseError(f"{what}: compute the adversarial terms with model.gan_loss and the cycle terms with "
                                "model.cycle_loss (the model's losses, yours in this notebook)")
        want, want_a, want_b = cyclegan.generator_losses(model, a, b)
        need = set(want)
        have = {k for k, v in losses.items() if not (lam == 0 and k.startswith("G_identity") and float(torch.as_tensor(v).detach()) == 0)}
        if have != need:
            missing, extra = sorted(need - have), sorted(have - need)
            hint = (" (the identity loss is off when model.identity_weight is 0: leave its terms out)"
                    if lam == 0 and any(k.startswith("G_identity") for k in extra) else
                    " (the identity terms belong in when model.identity_weight > 0)"
                    if any(k.startswith("G_identity") for k in missing) else "")
            raise ExerciseError(f"{what} with lambda_identity={lam}: missing terms {missing}, unexpected {extra}{hint}")
        if torch.allclose(fake_a.detach(), want_b.detach()) and torch.allclose(fake_b.detach(), want_a.detach()):
            raise ExerciseError(f"{what}: fake_a and fake_b are swapped; return (losses, fake_a, fake_b) with "
                                "fake_a = G_BA(real_b) (young-looking) and fake_b = G_AB(real_a) (old-looking)")
        check_close(fake_b, want_b, f"{what}: fake_b", {
            "fake_b should be G_AB(real_a), the young faces aged": lambda: model.G_BA(a),
        })
        check_close(fake_a, want_a, f"{what}: fake_a", {
            "fake_a should be G_BA(real_b), the old faces rejuvenated": lambda: model.G_AB(b),
        })
        with torch.no_grad():
            fb, fa = model.G_AB(a), model.G_BA(b)
            diag = {
                "G_GAN_A2B": {"the aged fakes must be judged by D_B, the old-face judge (D_A judges young faces)":
                              lambda: gan_loss(model.D_A(fb), True),
                              "wrong target: the generator wants its fakes scored real (True)":
                              lambda: gan_loss(model.D_B(fb), False)},
                "G_GAN_B2A": {"the rejuvenated fakes must be judged by D_A, the young-face judge":
                              lambda: gan_loss(model.D_B(fa), True),
                              "wrong target: the generator wants its fakes scored real (True)":
                              lambda: gan_loss(model.D_A(fa), False)},
                "G_cycle_A": {"the round trip of a young face is G_BA(G_AB(real_a)): the same generator twice "
                              "does not bring it back": lambda: cycle_loss(model.G_AB(fb), a),
                              "the reconstruction is compared with the fake, not with the original real_a":
                              lambda: cycle_loss(model.G_BA(fb), fb)},
                "G_cycle_B": {"the round trip of an old face is G_AB(G_BA(real_b))":
                              lambda: cycle_loss(model.G_BA(fa), b),
                              "the reconstruction is compared with the fake, not with the original real_b":
                              lambda: cycle_loss(model.G_AB(fa), fa)},
                "G_identity_A": {"G_identity_A is G_BA's test on the young faces: a young face through the generator that makes young "
                                 "faces should come back unchanged":
                                 lambda: model.identity_loss(model.G_AB(a), a)},
                "G_identity_B": {"G_identity_B is G_AB's test on the old faces: an old face through the generator that makes old "
                                 "faces should come back unchanged":
                                 lambda: model.identity_loss(model.G_BA(b), b)},
            }
        for k in sorted(need):
            check_close(losses[k], want[k], f"{what}['{k}']", diag.get(k))
            _differentiable(losses[k], f"{what}['{k}']")
            _same_gradients(model, k, losses[k], want[k], what)
    return passed(what)


#: what each term teaches: the generators its gradient must reach, and why (for the messages)
_TEACHES = {
    "G_GAN_A2B": "the aged fakes were cut off from G_AB (detached, or made under torch.no_grad()) before D_B judged "
                 "them, so the aging generator never learns to fool D_B",
    "G_GAN_B2A": "the rejuvenated fakes were cut off from G_BA (detached, or made under torch.no_grad()) before D_A "
                 "judged them, so the rejuvenating generator never learns to fool D_A",
    "G_cycle_A": "the round trip young -> old -> young was cut off (detached) on the way, so a generator that takes "
                 "part in it does not learn to keep the person",
    "G_cycle_B": "the round trip old -> young -> old was cut off (detached) on the way, so a generator that takes "
                 "part in it does not learn to keep the person",
}


def _same_gradients(model, k: str, got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """``got``'s gradient must reach the same generators as the reference term's, with the same values.

    The values alone cannot show a detach: the fakes' numbers are the same, only the graph is cut.
    """
    for name in ("G_AB", "G_BA"):
        params = list(getattr(model, name).parameters())
        g_got = torch.autograd.grad(got, params, allow_unused=True, retain_graph=True)
        g_want = torch.autograd.grad(want, params, allow_unused=True, retain_graph=True)
        reaches_want = any(g is not None and bool(g.abs().sum() > 0) for g in g_want)
        reaches_got = any(g is not None and bool(g.abs().sum() > 0) for g in g_got)
        if reaches_want and not reaches_got:
            why = _TEACHES.get(k, "something on the way from the generator to this loss was detached")
            raise ExerciseError(f"{what}['{k}'] has the right value but gives {name} no gradient: {why}. Only the "
                                "discriminators' turn detaches the fakes; the generators' terms must keep their graph")
        if reaches_got != reaches_want or not all(
                (a is None and b is None) or (a is not None and b is not None and torch.allclose(a, b, atol=1e-6, rtol=1e-4))
                for a, b in zip(g_got, g_want)):
            raise ExerciseError(f"{what}['{k}'] has the right value but a different gradient for {name} than the "
                                "reference's: part of it was computed from detached tensors or outside the graph")


# --------------------------------------------------------------------------- the PatchGAN discriminator

_NORMS = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)
_ACTS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU, nn.SiLU, nn.PReLU)


def _kind(m: nn.Module) -> str:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return "conv"
    if isinstance(m, _NORMS):
        return "norm"
    if isinstance(m, _ACTS):
        return "act"
    return type(m).__name__


def _field(convs) -> int:
    """How many input pixels across one output score sees, walking back through the convolutions."""
    r = 1
    for c in reversed(convs):
        r = (r - 1) * c.stride[0] + c.kernel_size[0]
    return r


@exercise_check
def check_patch_discriminator(fn) -> str:
    """``fn(ndf, n_layers)`` against :func:`helpers.cyclegan.patch_discriminator`: layers, patch size, widths, numbers."""
    what = "patch_discriminator"
    for ndf, n_layers in ((8, 3), (4, 2)):
        net = built_block(fn, what, ndf, n_layers)
        leaves = _leaves(net)
        kinds = [_kind(m) for m in leaves]
        convs = [m for m in leaves if kinds[leaves.index(m)] == "conv"]
        label = f"{what}({ndf}, {n_layers})"
        if any(isinstance(m, nn.Sigmoid) for m in leaves):
            raise ExerciseError(f"{label} ends in a sigmoid. CycleGAN's least-squares loss regresses the raw scores "
                                "to 1 and 0; squashed through a sigmoid, a confident wrong score gives almost no "
                                "gradient, which is what LSGAN was chosen to avoid")
        if not convs or convs[0].in_channels != 3:
            raise ExerciseError(f"{label}: the first convolution must read the image's 3 colour channels")
        if len(convs) != n_layers + 2:
            raise ExerciseError(f"{label} has {len(convs)} convolutions; a PatchGAN with n_layers={n_layers} has "
                                f"{n_layers + 2}: n_layers that halve the image, one more at full stride 1 that widens, "
                                "and the last one that turns the features into one score per patch")
        if convs[-1].out_channels != 1:
            raise ExerciseError(f"{label}: the last convolution gives {convs[-1].out_channels} channels; each patch "
                                "gets one score, so it gives 1")
        if kinds[-1] != "conv":
            raise ExerciseError(f"{label} ends with {type(leaves[-1]).__name__} after its last convolution: the scores "
                                "are the last convolution's raw output, with nothing after it (a norm would force "
                                "their average to 0, an activation would clip them)")
        sizes = [c.kernel_size[0] for c in convs]
        field, want_field = _field(convs), cyclegan.receptive_field(n_layers)
        if field != want_field:
            strides = [c.stride[0] for c in convs]
            raise ExerciseError(f"{label}: each score sees a {field}x{field} patch of the input (kernels {sizes}, "
                                f"strides {strides}); the PatchGAN's is {want_field}x{want_field}. It uses 4x4 kernels "
                                "throughout, stride 2 for the layers that shrink the image and stride 1 for the last "
                                "two; a field of r pixels becomes (r - 1) x stride + kernel one layer further back")
        widths = [c.out_channels for c in convs[:-1]]
        want_widths = [ndf * min(2**n, 8) for n in range(n_layers + 1)]
        if widths != want_widths:
            raise ExerciseError(f"{label}: the layers are {widths} channels wide; they start at ndf and double at "
                                f"each layer, up to 8 x ndf: {want_widths}")
        pads = [c.padding[0] if isinstance(c.padding, tuple) else c.padding for c in convs]
        if pads != [1] * len(convs):
            raise ExerciseError(f"{label}: the convolutions pad by {pads}; every convolution pads by 1 pixel, so that "
                                "4x4 kernels with stride 2 halve the image exactly and the stride-1 layers keep "
                                "(nearly) its size")
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
        net.train()
        out = net(x)
        ref = cyclegan.patch_discriminator(ndf, n_layers).train()
        want_shape = tuple(ref(x).shape)
        if tuple(out.shape) != want_shape:
            raise ExerciseError(f"{label}: a 32x32 image gives scores of shape {tuple(out.shape)}, not {want_shape}. "
                                "With the kernels and strides right, that is the padding: every convolution pads "
                                "by 1 pixel")
        norms = [(i, m) for i, m in enumerate(leaves) if kinds[i] == "norm"]
        first_conv = leaves.index(convs[0])
        if any(i < leaves.index(convs[1]) for i, _ in norms):
            raise ExerciseError(f"{label} normalises the first layer's output. The first layer has no norm (Isola et "
                                "al., and DCGAN before them): normalising features computed straight from the image "
                                "throws away its overall brightness and contrast, which a discriminator should see")
        if len(norms) != n_layers:
            raise ExerciseError(f"{label} has {len(norms)} normalisation layers; every convolution between the first "
                                f"and the last is followed by one ({n_layers} in all)")
        if any(isinstance(m, nn.BatchNorm2d) for _, m in norms):
            raise ExerciseError(f"{label} uses batch norm. CycleGAN trains on batches of one face (on a CPU here), "
                                "where batch statistics are those of one image and change from step to step; it "
                                "normalises each image on its own, with instance norm")
        if not all(isinstance(m, nn.InstanceNorm2d) for _, m in norms):
            raise ExerciseError(f"{label} normalises with {type(norms[0][1]).__name__}; the PatchGAN uses instance norm")
        acts = [m for i, m in enumerate(leaves) if kinds[i] == "act"]
        if len(acts) != n_layers + 1:
            raise ExerciseError(f"{label} has {len(acts)} activations; every convolution but the last is followed by "
                                f"one ({n_layers + 1} in all)")
        if not all(isinstance(m, nn.LeakyReLU) for m in acts):
            bad = next(m for m in acts if not isinstance(m, nn.LeakyReLU))
            raise ExerciseError(f"{label} uses {type(bad).__name__}; a discriminator uses LeakyReLU, so that "
                                "negative features still pass a gradient back to the generator")
        if any(abs(m.negative_slope - 0.2) > 1e-6 for m in acts):
            slope = next(m.negative_slope for m in acts if abs(m.negative_slope - 0.2) > 1e-6)
            raise ExerciseError(f"{label}: LeakyReLU with slope {slope:g}; the recipe (DCGAN's, kept by pix2pix and "
                                "CycleGAN) uses 0.2")
        biased = [c for c in convs[1:-1] if c.bias is not None]
        if biased:
            raise ExerciseError(f"{label}: a convolution followed by instance norm has a bias. The norm subtracts each "
                                "channel's mean, which removes any bias: a parameter that cannot learn. Leave it out "
                                "there (the first and last convolutions, with no norm after them, keep theirs)")
        if convs[0].bias is None or convs[-1].bias is None:
            raise ExerciseError(f"{label}: the first and the last convolutions have no norm after them, so they keep "
                                "their bias")
        if [_kind(m) for m in leaves[first_conv:]] != [_kind(m) for m in _leaves(ref)]:
            order = ", ".join(type(m).__name__ for m in leaves)
            raise ExerciseError(f"{label}'s layers come in the order {order}; each layer is its convolution, then "
                                "(from the second on) the norm, then the activation")
        check_same_numbers(net, lambda: cyclegan.patch_discriminator(ndf, n_layers), x, label)
    return passed(what)
