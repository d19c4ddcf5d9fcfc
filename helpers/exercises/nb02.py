"""Checks for notebook 02's exercises: the GAN's losses and one step of the game.

- :func:`check_discriminator_loss`: ``discriminator_loss(real_logits, fake_logits)``;
- :func:`check_generator_loss`: the non-saturating ``generator_loss(fake_logits)``;
- :func:`check_minimax_generator_loss`: the minimax ``generator_loss_minimax(fake_logits)``;
- :func:`check_gan_step`: ``gan_step(gan, real)``, one discriminator and one generator update;
- :func:`check_up_block`: ``up_block(c_in, c_out)``, one block of the DCGAN generator.

The references are :mod:`helpers.dcgan`'s functions, :meth:`helpers.dcgan.DCGAN.train_step` and
:func:`helpers.dcgan.up_block`.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from .. import config, dcgan
from ._shared import built_block, check_layer_order, check_same_numbers
from ._shared import leaves as _leaves
from .core import ExerciseError, check_close, exercise_check, passed


def _logits(n: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=g) * 3).requires_grad_(True)


def _bce(logits, target: float, reduction="mean"):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction=reduction)


def _differentiable(out, what: str) -> None:
    if torch.is_tensor(out) and not out.requires_grad:
        raise ExerciseError(f"{what}'s result carries no gradient: keep it a tensor computed from the logits "
                            "(no .item(), .detach() or torch.tensor(...) around it), or the networks cannot learn from it")


@exercise_check
def check_discriminator_loss(fn) -> str:
    """``fn(real_logits, fake_logits)`` against :func:`helpers.dcgan.discriminator_loss`."""
    what = "discriminator_loss"
    real, fake = _logits(64, 0), _logits(48, 1)
    got = fn(real, fake)
    want = dcgan.discriminator_loss(real, fake)
    sig = torch.sigmoid
    check_close(got, want, what, {
        "the targets are swapped: real logits get target 1 (\"real\"), fake logits target 0":
            lambda: _bce(real, 0.0) + _bce(fake, 1.0),
        "the sign is flipped: BCE is already the negative log-likelihood, so add the two BCE terms as they are":
            lambda: -want,
        "you summed over the batch: reduce each term with the mean, so the loss does not grow with the batch size":
            lambda: _bce(real, 1.0, "sum") + _bce(fake, 0.0, "sum"),
        "you averaged the two terms: L_D is their sum, -log D(x) - log(1 - D(G(z)))":
            lambda: 0.5 * want,
        "only the real images' term is there: add the fakes' term, BCE with target 0":
            lambda: _bce(real, 1.0),
        "only the fakes' term is there: add the real images' term, BCE with target 1":
            lambda: _bce(fake, 0.0),
        "you applied a sigmoid before binary_cross_entropy_with_logits, which applies its own: pass the logits":
            lambda: _bce(sig(real), 1.0) + _bce(sig(fake), 0.0),
    })
    _differentiable(got, what)
    return passed(what)


@exercise_check
def check_generator_loss(fn) -> str:
    """``fn(fake_logits)`` against the non-saturating :func:`helpers.dcgan.generator_loss`."""
    what = "generator_loss"
    fake = _logits(64, 2)
    got = fn(fake)
    want = dcgan.generator_loss(fake)
    check_close(got, want, what, {
        "this is the minimax loss log(1 - D(G(z))), which saturates when D rejects the fakes; "
        "the non-saturating loss is -log D(G(z)), BCE with target 1": lambda: dcgan.generator_loss_minimax(fake),
        "wrong target: the generator wants its fakes called real, so the target is 1, not 0":
            lambda: _bce(fake, 0.0),
        "the sign is flipped: BCE with target 1 is already -log D(G(z))": lambda: -want,
        "you summed over the batch: reduce with the mean": lambda: _bce(fake, 1.0, "sum"),
        "you applied a sigmoid before binary_cross_entropy_with_logits, which applies its own: pass the logits":
            lambda: _bce(torch.sigmoid(fake), 1.0),
    })
    _differentiable(got, what)
    return passed(what)


@exercise_check
def check_minimax_generator_loss(fn) -> str:
    """``fn(fake_logits)`` against :func:`helpers.dcgan.generator_loss_minimax`, ``log(1 - D(G(z)))``."""
    what = "generator_loss_minimax"
    fake = _logits(64, 3)
    got = fn(fake)
    want = dcgan.generator_loss_minimax(fake)
    check_close(got, want, what, {
        "this is the non-saturating loss -log D(G(z)); the minimax one is log(1 - D(G(z))) = -BCE(target 0)":
            lambda: dcgan.generator_loss(fake),
        "the sign is flipped: BCE with target 0 is -log(1 - D(G(z))), and the generator minimises +log(1 - D(G(z)))":
            lambda: -want,
        "you summed over the batch: reduce with the mean": lambda: -_bce(fake, 0.0, "sum"),
    })
    _differentiable(got, what)
    return passed(what)


# --------------------------------------------------------------------------- one step of the game

_KEYS = ("loss_D", "loss_G", "D_x", "D_G_z")


def _tiny_gan() -> dcgan.DCGAN:
    """A DCGAN on 8-pixel images, with plain SGD so that the steps compare exactly (Adam's first step is a sign)."""
    s = replace(config.DCGAN, image_size=8, nz=4, ngf=4, ndf=4, n_samples=4, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        gan = dcgan.DCGAN(s)
    gan.opt_D = torch.optim.SGD(gan.D.parameters(), lr=0.05)
    gan.opt_G = torch.optim.SGD(gan.G.parameters(), lr=0.05)
    return gan


def _variant(gan, real, *, detach=True, zero_D=True, zero_G=True, order="DG", fresh_noise=False, joint=False,
             g_loss=None):
    """The reference step with one plausible mistake switched on (to name the student's)."""
    z = torch.randn(real.shape[0], gan.nz, device=real.device)
    fake = gan.G(z)

    def d_turn():
        if joint:
            logits = gan.D(torch.cat([real, fake.detach()]))
            r, f = logits[: len(real)], logits[len(real):]
        else:
            r, f = gan.D(real), gan.D(fake.detach() if detach else fake)
        loss = gan.d_loss(r, f)
        if zero_D:
            gan.opt_D.zero_grad(set_to_none=True)
        loss.backward(retain_graph=not detach)
        gan.opt_D.step()
        return loss, r, f

    def g_turn():
        x = gan.G(torch.randn(real.shape[0], gan.nz, device=real.device)) if fresh_noise else fake
        loss = (g_loss or gan.g_loss)(gan.D(x))
        if zero_G:
            gan.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        gan.opt_G.step()
        return loss

    if order == "DG":
        loss_D, r, f = d_turn()
        loss_G = g_turn()
    else:
        loss_G = g_turn()
        loss_D, r, f = d_turn()
    return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(), "D_x": torch.sigmoid(r.detach()).mean(),
            "D_G_z": torch.sigmoid(f.detach()).mean()}


def _batches(n_steps: int = 2):
    g = torch.Generator().manual_seed(5)
    return [torch.rand(6, 3, 8, 8, generator=g) * 2 - 1 for _ in range(n_steps)]


class _Watch:
    """What a step did, in order: the losses it called, the optimisers it stepped, each gradient that reached G."""

    def __init__(self, gan):
        self.events: list[str] = []
        d, g = gan.d_loss, gan.g_loss
        gan.d_loss = lambda *a: (self.events.append("d_loss"), d(*a))[1]
        gan.g_loss = lambda *a: (self.events.append("g_loss"), g(*a))[1]
        for name in ("D", "G"):
            opt = getattr(gan, f"opt_{name}")
            opt.step = self._stepping(opt.step, f"opt_{name}")
        for p in gan.G.parameters():
            p.register_hook(self._reached_G)
        amp = gan.precision  # on a CPU its backward and step are the plain ones; on a T4 they scale the gradients
        amp.backward = self._stepping(amp.backward, "amp.backward")
        amp.step = self._stepping(amp.step, "amp.step")

    def _stepping(self, step, name):
        def wrapped(*args, **kwargs):
            self.events.append(name)
            return step(*args, **kwargs)
        return wrapped

    def _reached_G(self, grad):
        if not self.events or self.events[-1] != "G grad":  # one event per backward pass, not per weight
            self.events.append("G grad")
        return grad

    def steps(self) -> list[list[str]]:
        """The events of each call of the step (each call starts with a ``call`` marker)."""
        out: list[list[str]] = []
        for e in self.events:
            if e == "call":
                out.append([])
            elif out:
                out[-1].append(e)
        return out


def _play(step, n_steps: int = 2, watch: list | None = None) -> torch.Tensor:
    """Run ``step(gan, real)`` ``n_steps`` times on a fresh tiny GAN: the logged numbers, then every weight, as one vector.

    ``watch``: a list that gets the :class:`_Watch` of the run (what the step called, in order).
    """
    gan = _tiny_gan()
    w = _Watch(gan) if watch is not None else None
    if watch is not None:
        watch.append(w)
    numbers = []
    with torch.random.fork_rng(devices=[]):
        for i, real in enumerate(_batches(n_steps)):
            torch.manual_seed(100 + i)
            if w is not None:
                w.events.append("call")
            out = step(gan, real)
            if not isinstance(out, dict):
                raise ExerciseError(f"gan_step should return the dict of logged numbers, not {type(out).__name__}")
            missing = [k for k in _KEYS if k not in out]
            if missing:
                raise ExerciseError(f"gan_step's result lacks {missing}: return loss_D, loss_G, D_x and D_G_z")
            numbers += [torch.as_tensor(out[k]).detach().float().reshape(()) for k in _KEYS]
    weights = [p.detach().flatten() for net in (gan.D, gan.G) for p in net.parameters()]
    return torch.cat([torch.stack(numbers), *weights])


def _G_size() -> int:
    return sum(p.numel() for p in _tiny_gan().G.parameters())


def _wrong_optimiser(events: list[str], what: str) -> None:
    """Raise when a turn (its loss, then the first optimiser step after it) stepped the other network's optimiser.

    Works on the events of a step cut short by an error, too.
    """
    def first_step_after(loss):
        if loss not in events:
            return None
        return next((e for e in events[events.index(loss) + 1:] if e.startswith("opt_")), None)

    d_steps, g_steps = first_step_after("d_loss"), first_step_after("g_loss")
    rule = "Each turn steps the optimiser of the network it trains, and only that one"
    if d_steps == "opt_G" and g_steps == "opt_D":
        raise ExerciseError(f"{what}: the wrong optimiser: the optimisers are swapped, the discriminator's turn "
                            f"stepped the generator's and the generator's turn the discriminator's. {rule}")
    if d_steps == "opt_G":
        raise ExerciseError(f"{what}: the wrong optimiser: the discriminator's turn stepped the generator's "
                            f"optimiser, so G moved on D's loss and the discriminator does not learn. {rule}")
    if g_steps == "opt_D":
        raise ExerciseError(f"{what}: the wrong optimiser: the generator's turn stepped the discriminator's "
                            f"optimiser, so the generator's weights did not change and D moved twice. {rule}")


def _diagnose_turns(w: _Watch, what: str) -> None:
    """Name the mistakes that the order of a step's calls shows: a turn that steps the wrong optimiser, a
    discriminator's turn whose gradient reaches the generator, a generator that never learns."""
    for events in w.steps():
        stepped = [e for e in events if e.startswith("opt_")]
        if "d_loss" not in events or "g_loss" not in events:
            raise ExerciseError(f"{what} must compute its two losses with the model's own, gan.d_loss and gan.g_loss "
                                "(yours in this notebook), once each per call, so that the model plays with the "
                                "losses it was given")
        _wrong_optimiser(events, what)
        if "opt_G" not in stepped:
            raise ExerciseError(f"{what}: the generator's weights did not change: its optimiser is never stepped. "
                                "The generator's turn ends, like the discriminator's, with its own optimiser's step")
        if "opt_D" not in stepped:
            raise ExerciseError(f"{what}: the discriminator's weights did not change: its optimiser is never "
                                "stepped. The discriminator's turn ends with its own optimiser's step")
        d_turn = events[events.index("d_loss"): events.index("opt_D")] if events.index("d_loss") < events.index(
            "opt_D") else []
        if "G grad" in d_turn:
            raise ExerciseError(
                f"{what}: the discriminator's turn sent a gradient into the generator: the fakes it judged still "
                "lead back into G (retain_graph=True only silences the error this causes). The numbers can come out "
                "right, but only because the generator's gradients are cleared again before its own backward pass; "
                "the step pays for a backward pass through G it does not need, and if that clearing moves, the "
                "generator learns from D's loss, to make its fakes easier to catch. Cut the fakes off from G for "
                "the discriminator's turn (Question 2 at the end explains)")
        if "G grad" not in events:
            raise ExerciseError(
                f"{what}: the generator's weights did not change: no gradient reached G in its turn. Its loss was "
                "computed from fakes cut off from G (detached, or made under torch.no_grad()). Only the "
                "discriminator's turn detaches; the generator's turn must judge the fakes with their graph")


@exercise_check
def check_gan_step(step) -> str:
    """``step(gan, real)`` against :meth:`helpers.dcgan.DCGAN.train_step`: two steps on a tiny DCGAN, every number and weight."""
    what = "gan_step"
    watch: list = []
    try:
        got = _play(step, watch=watch)
    except RuntimeError as err:
        for events in watch[0].steps() if watch else []:
            _wrong_optimiser(events, what)
        text = str(err)
        if "backward through the graph a second time" in text:
            raise ExerciseError(
                f"{what}: the discriminator's loss was computed on fakes that still lead back into G, so its "
                "backward pass went on through the generator and freed that part of the graph; the generator's "
                "backward pass then had nothing left. The discriminator's turn must not reach G: cut its fakes "
                "off from the generator's graph (Question 2 at the end explains)") from None
        if "modified by an inplace operation" in text:
            raise ExerciseError(
                f"{what}: the generator's loss uses the discriminator's verdict from *before* D's update (the "
                "optimiser's step changed the weights that verdict was computed with). In the generator's turn, "
                "ask the updated discriminator again") from None
        raise
    _diagnose_turns(watch[0], what)
    g_size = _G_size()
    if torch.equal(got[-g_size:], _play(lambda gan, real: {k: torch.zeros(()) for k in _KEYS})[-g_size:]):
        raise ExerciseError(f"{what}: the generator's weights did not change, although its optimiser was stepped: "
                            "its gradients were cleared after its backward pass, or never computed. Clear, then "
                            "backward, then step")
    want = _play(lambda gan, real: gan.train_step(real))
    check_close(got, want, what, {
        "the generator went first: update the discriminator first (on reals and detached fakes), then the "
        "generator against the *updated* discriminator": lambda: _play(lambda g, r: _variant(g, r, order="GD")),
        "the discriminator's gradients are never cleared: clear them before its backward pass (the generator's "
        "backward pass also leaves gradients in D)": lambda: _play(lambda g, r: _variant(g, r, zero_D=False)),
        "the generator's gradients are never cleared: clear them before its backward pass, or every step adds "
        "the previous steps' gradients": lambda: _play(lambda g, r: _variant(g, r, zero_G=False)),
        "the generator's turn used new noise: judge the same fakes that the discriminator just saw":
            lambda: _play(lambda g, r: _variant(g, r, fresh_noise=True)),
        "reals and fakes went through D in one batch: with batch normalisation that mixes their statistics; "
        "give D the reals and the fakes in two separate calls": lambda: _play(lambda g, r: _variant(g, r, joint=True)),
        "the generator's turn used the minimax loss: it trains with the model's non-saturating loss, gan.g_loss":
            lambda: _play(lambda g, r: _variant(g, r, g_loss=dcgan.generator_loss_minimax)),
    }, atol=1e-5, rtol=1e-4)
    for events in watch[0].steps():
        if events.count("amp.step") < 2 or events.count("amp.backward") < 2:
            raise ExerciseError(
                f"{what}: right on this computer, but each turn calls backward() and the optimiser's step() itself. "
                "On a Colab T4 the model trains in float16, where small gradients round to zero unless the loss "
                "is scaled first; gan.precision (amp in the cell) does that. Call amp.backward(loss) and "
                "amp.step(optimiser) in both turns: on a CPU they are the plain calls")
    return passed(what)


# --------------------------------------------------------------------------- the generator's up-block

_OTHER_NORMS = (nn.InstanceNorm2d, nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU, nn.SiLU, nn.PReLU)


def _kind(m: nn.Module) -> str:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return "conv"
    if isinstance(m, (nn.BatchNorm2d, *_OTHER_NORMS)):
        return "norm"
    if isinstance(m, _ACTIVATIONS):
        return "act"
    return type(m).__name__


@exercise_check
def check_up_block(fn) -> str:
    """``fn(c_in, c_out)`` against :func:`helpers.dcgan.up_block`: its layers, its output's shape, its numbers."""
    what = "up_block"
    c_in, c_out, H = 8, 4, 5
    block = built_block(fn, what, c_in, c_out)
    leaves = _leaves(block)
    convs = [m for m in leaves if _kind(m) == "conv"]
    if any(type(m) is nn.Conv2d for m in convs):
        raise ExerciseError(f"{what}: that is an ordinary convolution, which keeps or shrinks the image; the generator "
                            "*grows* it, with a transposed convolution (the discriminator is the one that uses "
                            "ordinary strided convolutions)")
    if len(convs) != 1:
        raise ExerciseError(f"{what} has {len(convs)} convolutions; a DCGAN block has exactly one, a transposed "
                            "convolution, followed by its normalisation and activation")
    conv = convs[0]
    if (conv.in_channels, conv.out_channels) != (c_in, c_out):
        raise ExerciseError(f"{what}({c_in}, {c_out}): the convolution maps {conv.in_channels} channels to "
                            f"{conv.out_channels}; it must take c_in channels and give c_out")
    k, st, pd = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    x = torch.randn(2, c_in, H, H, generator=torch.Generator().manual_seed(1))
    block.train()
    out = block(x)
    if tuple(out.shape[-2:]) != (2 * H, 2 * H):
        size = tuple(out.shape[-2:])
        if st != 2:
            raise ExerciseError(f"{what}: a {H}x{H} map came out {size[0]}x{size[1]}: with stride {st} the block does "
                                "not double the size. The stride is the factor by which a transposed convolution "
                                "spreads its input out")
        if k != 4:
            raise ExerciseError(f"{what}: a {H}x{H} map came out {size[0]}x{size[1]}, with a {k}x{k} kernel. DCGAN uses "
                                "4x4 kernels; then choose the padding that gives exactly twice the size")
        raise ExerciseError(f"{what}: a {H}x{H} map came out {size[0]}x{size[1]}, not {2 * H}x{2 * H}: the padding is "
                            "wrong. A transposed convolution gives (H - 1) x stride - 2 x padding + kernel; solve that "
                            "for an output of exactly 2H")
    if k != 4:
        raise ExerciseError(f"{what}: the size is right, but with a {k}x{k} kernel. With stride 2, a 2x2 kernel paints "
                            "each input pixel into its own 2x2 square (blocky, no pixel sees its neighbours) and an odd "
                            "one covers the output unevenly; DCGAN's 4x4 kernels overlap evenly")
    norms = [m for m in leaves if _kind(m) == "norm"]
    if not norms:
        raise ExerciseError(f"{what} has no normalisation: DCGAN puts a batch norm after every convolution of the "
                            "generator but the last, which is what keeps its training stable")
    if not isinstance(norms[0], nn.BatchNorm2d):
        raise ExerciseError(f"{what} normalises with {type(norms[0]).__name__}; DCGAN's recipe is batch "
                            "normalisation, over the batch and the pixels of each channel")
    if norms[0].num_features != c_out:
        raise ExerciseError(f"{what}: the batch norm is sized for {norms[0].num_features} channels; it normalises "
                            "the convolution's output, c_out channels")
    acts = [m for m in leaves if _kind(m) == "act"]
    if not acts:
        raise ExerciseError(f"{what} has no activation: without a nonlinearity every block is linear, and the "
                            "stacked blocks could only draw linear functions of the noise")
    if isinstance(acts[0], nn.LeakyReLU):
        raise ExerciseError(f"{what}: LeakyReLU is the discriminator's activation; the generator's hidden layers "
                            "use the plain ReLU in DCGAN's recipe")
    if not isinstance(acts[0], nn.ReLU):
        raise ExerciseError(f"{what} uses {type(acts[0]).__name__}; the generator's hidden layers use ReLU (tanh "
                            "belongs only to the output layer, which puts the image in [-1, 1])")
    check_layer_order(leaves, conv, norms[0], what, unit="a DCGAN block")
    if conv.bias is not None:
        raise ExerciseError(f"{what}: the transposed convolution has a bias. The batch norm right after it subtracts "
                            "each channel's mean, which removes any bias: it is a parameter that cannot learn. Leave it out")
    check_same_numbers(block, lambda: dcgan.up_block(c_in, c_out), x, what)
    return passed(what)
