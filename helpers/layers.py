"""Building blocks that more than one model family uses: a residual block, weight initialisation,
the GAN and reconstruction losses, the parts of the real-face recipes, and learning-rate schedules chosen by name.

- :class:`ResidualBlock`: Johnson et al.'s residual block with instance norm (CycleGAN's
  generator, the age-modulated GAN's identity encoder);
- :func:`init_weights`: every convolution from N(0, 0.02), CycleGAN's initialisation;
- :class:`LSGANLoss` (Mao et al., 2017), :class:`WeightedL1` (cycle and identity terms),
  :class:`ClassificationLoss` (age-group heads);
- the parts of the real-face recipes: :func:`mask_head` and :func:`mask_penalty` (GANimation's
  attention mask), :class:`AgeAuxClassifier` (a small age classifier the generators learn
  from) and :func:`diff_augment` (DiffAugment);
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


# --------------------------------------------------------------------------- parts of the real-face recipes

def mask_head(c_in: int) -> nn.Module:
    """GANimation's attention head (Pumarola et al., 2018): one channel, read from the same features as the colour output."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(c_in, 1, 7))


#: The mask head's starting bias: sigmoid(-3) = 0.047, so a new mask generator changes under 5% of every pixel.
MASK_INIT_BIAS = -3.0


class AgeAuxClassifier(nn.Module):
    """A small age classifier whose verdict on the fakes a generator learns from (the models' ``lambda_age``).

    It is *not* the course's judge (:class:`helpers.metrics.AgeClassifier`): another design
    (strided 4x4 convolutions and LeakyReLU, no normalisation) trained from scratch inside the
    training step of the model that owns it, on the real training faces (CycleGAN: young -> 0,
    old -> 1, one logit; the age-modulated GAN: one logit per age group, ``n_out`` of them). It
    reads the faces average-pooled to ``image_size`` (32 px by default), so its gradient asks the
    generator for coarse, visible changes (hair colour, skin, face shape) rather than for
    pixel-level patterns that would fool only this one network. The auxiliary domain classifier
    of StarGAN (Choi et al., 2018) plays the same part, there on the discriminator's trunk.

    ``linear=True`` replaces the convolutions with one linear layer on the pooled pixels. Its
    gradient is then the same fixed template for every face (one per group: roughly the
    difference between the groups' average faces). That does not make it safe to learn from:
    its logits grow without bound along the template, and on real faces the age-modulated
    generator painted one saturated blob where the template weighs most (notebook 06,
    section 6). It stays for that lesson.
    """

    def __init__(self, ndf: int = 16, image_size: int = 32, n_out: int = 1, linear: bool = False):
        super().__init__()
        self.image_size, self.n_out = int(image_size), int(n_out)
        if linear:
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * self.image_size**2, self.n_out))
            return
        layers, c = [], 3
        for w in (ndf, ndf * 2, ndf * 4):
            layers += [nn.Conv2d(c, w, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            c = w
        layers += [nn.Conv2d(c, ndf * 8, 3, 1, 1), nn.LeakyReLU(0.2, True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(ndf * 8, self.n_out)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for faces in [-1, 1] of any size: ``(B,)`` of "old" with one output, else ``(B, n_out)``."""
        if x.shape[-1] != self.image_size:
            x = F.adaptive_avg_pool2d(x, self.image_size)
        y = self.net(x)
        return y.squeeze(1) if self.n_out == 1 else y


#: The augmentations :func:`diff_augment` knows (Zhao et al., 2020).
DIFFAUG_POLICIES = ("color", "translation", "cutout")


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout") -> torch.Tensor:
    """DiffAugment (Zhao, Liu, Lin, Zhu and Han, 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

    Random, differentiable changes applied alike to the real faces and to the fakes a
    discriminator sees, so that with few faces it cannot simply memorise the real ones: ``color``
    (brightness +-0.5, saturation x0-2, contrast x0.5-1.5), ``translation`` (a shift of up to 1/8
    of the size, zero-filled) and ``cutout`` (a square of half the size set to 0). Each face of
    the batch gets its own draw from torch's global random generator. ``policy``: the names,
    comma-separated ("" does nothing). Faces in [-1, 1].
    """
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = sorted(set(names) - set(DIFFAUG_POLICIES))
    if unknown:
        raise ValueError(f"DiffAugment has no policy {', '.join(unknown)}; choose from {list(DIFFAUG_POLICIES)}")
    B, _, H, W = x.shape
    dev, dt = x.device, x.dtype
    for name in names:
        if name == "color":
            x = x + (torch.rand(B, 1, 1, 1, device=dev, dtype=dt) - 0.5)
            mean = x.mean(1, keepdim=True)
            x = (x - mean) * (torch.rand(B, 1, 1, 1, device=dev, dtype=dt) * 2) + mean
            mean = x.mean((1, 2, 3), keepdim=True)
            x = (x - mean) * (torch.rand(B, 1, 1, 1, device=dev, dtype=dt) + 0.5) + mean
        elif name == "translation":
            sh, sw = int(H * 0.125 + 0.5), int(W * 0.125 + 0.5)
            ty = torch.randint(-sh, sh + 1, (B, 1, 1), device=dev)
            tx = torch.randint(-sw, sw + 1, (B, 1, 1), device=dev)
            gb, gy, gx = torch.meshgrid(torch.arange(B, device=dev), torch.arange(H, device=dev),
                                        torch.arange(W, device=dev), indexing="ij")
            gy = (gy + ty + 1).clamp(0, H + 1)
            gx = (gx + tx + 1).clamp(0, W + 1)
            x = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2)
        else:  # cutout
            ch, cw = int(H * 0.5 + 0.5), int(W * 0.5 + 0.5)
            oy = torch.randint(0, H + (1 - ch % 2), (B, 1, 1), device=dev)
            ox = torch.randint(0, W + (1 - cw % 2), (B, 1, 1), device=dev)
            gb, gy, gx = torch.meshgrid(torch.arange(B, device=dev), torch.arange(ch, device=dev),
                                        torch.arange(cw, device=dev), indexing="ij")
            gy = (gy + oy - ch // 2).clamp(0, H - 1)
            gx = (gx + ox - cw // 2).clamp(0, W - 1)
            keep = torch.ones(B, H, W, device=dev, dtype=dt)
            keep[gb, gy, gx] = 0
            x = x * keep.unsqueeze(1)
    return x.contiguous()


def augmenter(policy: str):
    """``x -> diff_augment(x, policy)``, the policy's names checked now (a ``ValueError`` before any training);
    ``""`` gives the identity."""
    if not policy:
        return lambda x: x
    diff_augment(torch.zeros(1, 3, 8, 8), policy)
    return lambda x: diff_augment(x, policy)


def mask_penalty(m: torch.Tensor, weight: float, tv_weight: float = 0.0) -> torch.Tensor:
    """GANimation's attention regularisers (Pumarola et al., 2018): ``weight`` x mean(m) keeps the edit
    small (only where the face must change), ``tv_weight`` x total variation keeps the mask smooth."""
    loss = weight * m.float().mean()
    if tv_weight:
        m = m.float()
        tv = (m[..., 1:, :] - m[..., :-1, :]).pow(2).mean() + (m[..., :, 1:] - m[..., :, :-1]).pow(2).mean()
        loss = loss + tv_weight * tv
    return loss


# --------------------------------------------------------------------------- schedules


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


def coarse_colour(change: torch.Tensor, cells: int) -> torch.Tensor:
    """``change`` (B, 3, H, W) with its grey part kept and its colour averaged to ``cells x cells`` and enlarged smoothly.

    The grey part is the mean over R, G and B (the same on all three); the colour is what is left.
    """
    grey = change.mean(1, keepdim=True)
    colour = F.adaptive_avg_pool2d((change - grey).float(), cells)
    colour = F.interpolate(colour, size=change.shape[-2:], mode="bilinear", align_corners=False)
    return grey + colour.to(change.dtype)
