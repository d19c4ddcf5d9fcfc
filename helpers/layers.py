"""Building blocks that more than one model family uses: a residual block, weight initialisation,
the GAN and reconstruction losses, and learning-rate schedules chosen by name.

- :class:`ResidualBlock`: Johnson et al.'s residual block with instance norm (CycleGAN's
  generator, the age-modulated GAN's identity encoder);
- :func:`init_weights`: every convolution from N(0, 0.02), CycleGAN's initialisation;
- :class:`LSGANLoss` (Mao et al., 2017), :class:`WeightedL1` (cycle and identity terms),
  :class:`ClassificationLoss` (age-group heads);
- :func:`make_scheduler`: ``"linear"`` (constant, then linearly to zero, as in CycleGAN),
  ``"constant"``, ``"step"`` or ``"cosine"``.

Each family module (:mod:`helpers.cyclegan`, :mod:`helpers.agegan`) explains where these sit
in its own equations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- blocks


class ResidualBlock(nn.Module):
    """``x + F(x)`` where F is two reflection-padded 3x3 convolutions with instance norm.

    ``inner`` is the width of the middle layer (default: the same as ``channels``); seed 003's
    blocks are narrower inside than outside.

    The convolutions that feed an instance norm have no bias: the norm subtracts each channel's
    mean, which removes any constant bias exactly, so a bias there would be a dead parameter.
    """

    def __init__(self, channels: int, inner: int | None = None):
        super().__init__()
        inner = inner or channels
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, inner, 3, bias=False), nn.InstanceNorm2d(inner), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(inner, channels, 3, bias=False), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


# --------------------------------------------------------------------------- initialisation


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """CycleGAN's initialisation: every convolution's weights from N(0, ``std``), biases 0. Returns ``net``.

    A network that must start in a particular state afterwards (a residual generator that starts
    as the identity, say) defines ``after_init()``, which is called last.
    """
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if hasattr(net, "after_init"):
        net.after_init()
    return net


def count_parameters(net: nn.Module) -> int:
    """The number of trainable parameters of ``net``."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- losses


class LSGANLoss(nn.Module):
    """Least-squares GAN loss (Mao et al., 2017): mean of ``(score - target)^2``, target 1 for "real", 0 for "fake".

    ``loss(scores, True)`` is what a generator minimises on its fakes and a discriminator on
    real images; ``loss(scores, False)`` is the discriminator's term on fakes. Computed in
    float32 even under mixed precision.
    """

    def forward(self, scores: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = 1.0 if target_is_real else 0.0
        return (scores.float() - target).pow(2).mean()


class WeightedL1(nn.Module):
    """``weight`` x mean absolute error between an output and its target, in float32 under mixed precision.

    The cycle term ``|F(G(x)) - x|`` and the identity term ``|G(y) - y|`` of CycleGAN and of the
    age-modulated GAN are both this loss; weight 0 switches a term off.
    """

    def __init__(self, weight: float = 10.0):
        super().__init__()
        self.weight = float(weight)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * F.l1_loss(output.float(), target.float())


class ClassificationLoss(nn.Module):
    """``weight`` x cross-entropy between class logits (age groups, say) and the wanted classes, in float32."""

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = float(weight)

    def forward(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return self.weight * F.cross_entropy(logits.float(), classes)


# --------------------------------------------------------------------------- learning-rate schedules


class LinearDecay:
    """LR factor: 1 for ``n_constant`` epochs, then down by ``1 / (n_decay + 1)`` each epoch, 0 after the last.

    ``factor(e) = clip((n_constant + n_decay - e) / (n_decay + 1), 0, 1)`` for epoch ``e`` (from
    0): with 100 + 100 epochs, epochs 0-99 use 1, epoch 100 uses 100/101, epoch 199 (the last)
    1/101, and 0 is reached exactly when training ends.
    """

    def __init__(self, n_constant: int, n_decay: int):
        self.n_constant, self.n_decay = int(n_constant), int(n_decay)

    def __call__(self, epoch: int) -> float:
        return min(1.0, max(0.0, (self.n_constant + self.n_decay - epoch) / (self.n_decay + 1)))


class _Constant:
    def __call__(self, epoch: int) -> float:
        return 1.0


#: Learning-rate policies by name, for :func:`make_scheduler`.
LR_POLICIES = ("linear", "constant", "step", "cosine")


def make_scheduler(optimizer, policy: str = "linear", n_epochs_constant: int = 100, n_epochs_decay: int = 100,
                   step_size: int = 50, gamma: float = 0.1):
    """A learning-rate scheduler chosen by name; call its ``step()`` once per epoch.

    - ``"linear"`` (CycleGAN's): constant for ``n_epochs_constant`` epochs, then linearly to
      zero over ``n_epochs_decay`` (:class:`LinearDecay`);
    - ``"constant"``: never changes;
    - ``"step"``: multiplied by ``gamma`` every ``step_size`` epochs;
    - ``"cosine"``: half a cosine from the initial rate to 0 over all the epochs.
    """
    sched = torch.optim.lr_scheduler
    if policy == "linear":
        return sched.LambdaLR(optimizer, LinearDecay(n_epochs_constant, n_epochs_decay))
    if policy == "constant":
        return sched.LambdaLR(optimizer, _Constant())
    if policy == "step":
        return sched.StepLR(optimizer, step_size=step_size, gamma=gamma)
    if policy == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, n_epochs_constant + n_epochs_decay), eta_min=0.0)
    raise ValueError(f"no learning-rate policy {policy!r}; choose one of {list(LR_POLICIES)}")
