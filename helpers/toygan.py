r"""A GAN on points in the plane: the warm-up of notebook 02, trained in seconds on a CPU.

The data are 2-D points from a **mixture of Gaussians**: ``modes`` small round clouds evenly
spaced on a circle (the "ring" that Metz et al., 2017, "Unrolled Generative Adversarial
Networks", used to show mode collapse). The generator is a small multilayer perceptron from
noise :math:`z \in \mathbb R^{n_z}` to a point :math:`(x, y)`; the discriminator another one from
a point to a logit. Both play exactly the game of :mod:`helpers.dcgan` (same losses, same step:
:class:`ToyGAN` *is* a :class:`helpers.dcgan.DCGAN` with other networks), but everything is small
enough to watch: the fakes are a scatter of points, and the discriminator's verdict
:math:`D(x)` can be drawn at every point of the plane, so each frame shows where the
discriminator believes the data are and how the generator's points move towards them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from . import config
from .dcgan import DCGAN, discriminator_loss, generator_loss
from .training import Precision


#: The warm-up's settings live with every other size in :mod:`helpers.config`.
ToyGANSettings, TOYGAN = config.ToyGANSettings, config.TOYGAN


def ring_of_gaussians(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.12, seed: int = 0) -> torch.Tensor:
    """``n`` points ``(n, 2)`` from ``modes`` Gaussian clouds of standard deviation ``std`` on a circle of ``radius``."""
    if n < 1 or modes < 1:
        raise ValueError(f"need at least one point and one mode, not n={n}, modes={modes}")
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(0, modes, (n,), generator=g)
    angle = 2 * math.pi * which.float() / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + std * torch.randn(n, 2, generator=g)


class PointGenerator(nn.Module):
    """Noise ``(B, nz)`` -> points ``(B, 2)``: two hidden ReLU layers, a linear output."""

    def __init__(self, nz: int = 4, hidden: int = 64):
        super().__init__()
        self.nz = nz
        self.net = nn.Sequential(nn.Linear(nz, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, z: torch.Tensor, labels=None) -> torch.Tensor:  # labels: DCGAN's signature; unused
        return self.net(z)


class PointDiscriminator(nn.Module):
    """Points ``(B, 2)`` -> one logit each ``(B,)``: two hidden LeakyReLU(0.2) layers."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        return self.net(x).reshape(-1)


class ToyGAN(DCGAN):
    """:class:`helpers.dcgan.DCGAN`'s game and step with point networks: ``G``, ``D``, ``opt_G``, ``opt_D``, ``nz``.

    ``d_loss``, ``g_loss`` and ``step_fn`` swap the losses or the whole step, as for DCGAN.
    Always on the CPU, in float32.
    """

    name = "toygan"

    def __init__(self, settings: ToyGANSettings | None = None, *, d_loss=None, g_loss=None, step_fn=None, **changes):
        s = replace(settings or TOYGAN, **changes)
        self.settings, self.device = s, torch.device("cpu")
        self.precision = Precision(self.device)
        self.config = {"nz": s.nz, "hidden": s.hidden, "lr": s.lr}
        self.nz, self.n_classes = s.nz, 0
        with torch.random.fork_rng(devices=[]):  # the same seed, the same starting networks
            torch.manual_seed(s.seed)
            self.G, self.D = PointGenerator(s.nz, s.hidden), PointDiscriminator(s.hidden)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=s.lr, betas=(s.beta1, 0.999))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=s.lr, betas=(s.beta1, 0.999))
        self.networks, self.optimizers, self.schedulers = {"G": self.G, "D": self.D}, {"G": self.opt_G, "D": self.opt_D}, {}
        self.fixed_noise = torch.randn(512, s.nz, generator=torch.Generator().manual_seed(s.seed))
        self.fixed_labels = None
        self.d_loss, self.g_loss = d_loss or discriminator_loss, g_loss or generator_loss
        self.step_fn = step_fn

    @torch.no_grad()
    def sample(self, z: torch.Tensor | None = None, labels=None) -> torch.Tensor:
        """Points ``(N, 2)`` from noise ``z`` (default: 512 fixed noise vectors)."""
        return self.G(self.fixed_noise if z is None else z)

    @torch.no_grad()
    def verdict(self, extent: float, n: int = 80) -> np.ndarray:
        """:math:`D(x)` on an ``n`` x ``n`` grid over ``[-extent, extent]^2`` (rows: y from bottom to top)."""
        t = torch.linspace(-extent, extent, n)
        yy, xx = torch.meshgrid(t, t, indexing="ij")
        return torch.sigmoid(self.D(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1))).reshape(n, n).numpy()


@dataclass
class Frame:
    """One snapshot of the game: the step, the generator's points, D's verdict on a grid, the last losses."""

    step: int
    fakes: np.ndarray
    verdict: np.ndarray
    losses: dict


def train_toy(gan: ToyGAN, data: torch.Tensor, steps: int | None = None, n_frames: int | None = None,
              batch_size: int | None = None) -> tuple[list[Frame], dict]:
    """Play ``steps`` rounds of ``gan.train_step`` on random batches of ``data``; returns ``(frames, history)``.

    ``frames``: ``n_frames`` :class:`Frame` s, evenly spaced, the first before any step.
    ``history``: every logged number at every step, ``{name: list}``. Batches are drawn from the
    settings' seed, and so is the step's noise: the same settings and step give the same game.
    """
    s = gan.settings
    steps, n_frames, batch_size = steps or s.steps, n_frames or s.n_frames, batch_size or s.batch_size
    if steps < 1 or n_frames < 1:
        raise ValueError(f"steps and n_frames must be at least 1, not {steps} and {n_frames}")
    extent = float(data.abs().max()) * 1.25
    at = set(np.linspace(0, steps, n_frames).round().astype(int).tolist())
    g = torch.Generator().manual_seed(s.seed + 1)
    frames, history = [], {}

    def snap(step, losses):
        frames.append(Frame(step, gan.sample().numpy(), gan.verdict(extent), dict(losses)))

    if 0 in at:
        snap(0, {})
    with torch.random.fork_rng(devices=[]):  # the step's noise from the seed too, leaving the caller's state alone
        torch.manual_seed(s.seed + 2)
        for step in range(1, steps + 1):
            batch = data[torch.randint(0, len(data), (batch_size,), generator=g)]
            numbers = {k: float(v) for k, v in gan.train_step(batch).items()}
            for k, v in numbers.items():
                history.setdefault(k, []).append(v)
            if step in at:
                snap(step, numbers)
    return frames, history


def show_frames(frames: list[Frame], data: torch.Tensor, ncols: int = 3, size: float = 3.0, titles=None):
    """The game frame by frame: D's verdict as the background (dark: "real"), real points grey, fakes red.

    ``titles``: one line per frame put above its step (to tell two games apart, say).
    """
    ncols = min(ncols, len(frames))
    nrows = -(-len(frames) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 1, size * nrows + 0.5), squeeze=False,
                             layout="constrained")
    extent = float(data.abs().max()) * 1.25
    real = data.numpy()
    for k, (ax, f) in enumerate(zip(axes.flat, frames)):
        im = ax.imshow(f.verdict, origin="lower", extent=(-extent, extent, -extent, extent), cmap="Blues",
                       vmin=0, vmax=1, alpha=0.8)
        ax.scatter(real[:, 0], real[:, 1], s=2, c="0.45", alpha=0.5, label="real")
        ax.scatter(f.fakes[:, 0], f.fakes[:, 1], s=3, c="tab:red", alpha=0.6, label="G(z)")
        ax.set(xlim=(-extent, extent), ylim=(-extent, extent), xticks=[], yticks=[])
        extra = f"\nD(x) {f.losses['D_x']:.2f}, D(G(z)) {f.losses['D_G_z']:.2f}" if "D_x" in f.losses else "\nbefore training"
        head = f"{titles[k]}\n" if titles else ""
        ax.set_title(f"{head}step {f.step}{extra}", fontsize=9)
    for ax in list(axes.flat)[len(frames):]:
        ax.set_axis_off()
    axes.flat[0].legend(loc="lower left", fontsize=7, markerscale=3)
    fig.colorbar(im, ax=axes, shrink=0.6, label="D(x): the discriminator's probability of 'real'")
    return fig


def modes_covered(points, modes: int = 8, radius: float = 2.0, std: float = 0.12, min_share: float = 0.02) -> int:
    """How many of the ring's clouds hold at least ``min_share`` of ``points`` within 3 ``std`` of their centre.

    All ``modes``: the generator draws every cloud; fewer: it has dropped some (mode collapse).
    """
    p = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    angle = 2 * math.pi * torch.arange(modes).float() / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], 1)
    d = torch.cdist(p, centres)
    near = d.min(1).values < 3 * std
    share = torch.bincount(d.argmin(1)[near], minlength=modes).float() / len(p)
    return int((share >= min_share).sum())


# --------------------------------------------------------------------------- a stabiliser: the R1 penalty


def r1_penalty(D: nn.Module, real: torch.Tensor) -> torch.Tensor:
    r"""Mescheder, Geiger and Nowozin (2018)'s R1: the batch mean of :math:`\lVert \nabla_x \ell(x) \rVert^2` on real points.

    :math:`\ell` is the discriminator's logit. The penalty is differentiable (``create_graph``), so
    adding :math:`\tfrac{\gamma}{2} R_1` to the discriminator's loss flattens its verdict on the data:
    at the equilibrium there is no slope left to push the generator past the real points, and the
    back-and-forth around it dies down.
    """
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
    return grad.pow(2).reshape(len(real), -1).sum(1).mean()


def r1_step(gamma: float = 1.0):
    """A step function for :class:`ToyGAN` (``step_fn=``): the plain GAN step with ``gamma / 2 * R1`` added to D's loss.

    It logs ``R1`` next to the usual ``loss_D``, ``loss_G``, ``D_x`` and ``D_G_z``. ``gamma=0`` is the plain step.
    """

    def step(gan, real):
        z = torch.randn(real.shape[0], gan.nz, device=real.device)
        fake = gan.G(z)
        real_logits, fake_logits = gan.D(real), gan.D(fake.detach())
        r1 = r1_penalty(gan.D, real) if gamma else torch.zeros(())
        loss_D = gan.d_loss(real_logits, fake_logits) + 0.5 * gamma * r1
        gan.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        gan.opt_D.step()
        loss_G = gan.g_loss(gan.D(fake))
        gan.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        gan.opt_G.step()
        return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(), "R1": r1.detach(),
                "D_x": torch.sigmoid(real_logits.detach()).mean(), "D_G_z": torch.sigmoid(fake_logits.detach()).mean()}

    return step


def compare_r1(data: torch.Tensor, settings: ToyGANSettings | None = None, gammas=(0.0, 1.0)) -> tuple[dict, dict]:
    """Train one :class:`ToyGAN` per ``gamma`` (same seed, same batches); returns ``({gamma: frames}, {gamma: numbers})``.

    The numbers, each a mean over the last quarter of the steps: ``|D(x) - 1/2|`` (how far the
    verdict on the real points is from the equilibrium's 1/2), the swing of ``loss_G`` (its
    standard deviation), ``R1`` (the squared slope of D on the data, measured also when it is not
    penalised) and the clouds covered at the end.
    """
    s = settings or TOYGAN
    frames, numbers = {}, {}
    for gamma in gammas:
        gan = ToyGAN(s, step_fn=r1_step(gamma))
        f, h = train_toy(gan, data)
        tail = max(1, len(h["D_x"]) // 4)
        numbers[gamma] = {
            "|D(x) - 1/2|": float(np.mean(np.abs(np.array(h["D_x"][-tail:]) - 0.5))),
            "loss_G swing": float(np.std(h["loss_G"][-tail:])),
            "R1 (slope^2 on data)": float(np.mean(h["R1"][-tail:])) if gamma else
            float(r1_penalty(gan.D, data[:512]).detach()),
            "clouds covered": modes_covered(f[-1].fakes, s.modes, s.radius, s.std),
        }
        frames[gamma] = f
    return frames, numbers
