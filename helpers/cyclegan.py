r"""CycleGAN: unpaired image-to-image translation, here between young and old faces.

**The problem.** We have photos of young people (domain :math:`A`) and photos of old people
(domain :math:`B`), but never the same person in both. A pix2pix-style model would need pairs
(this face at 25, the same face at 70); CycleGAN (Zhu, Park, Isola and Efros, 2017,
"Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks") learns from
the two unpaired piles alone. It trains two generators and two discriminators at once:

- :math:`G_{AB}: A \to B` ages a face, :math:`G_{BA}: B \to A` rejuvenates one;
- :math:`D_A` tells real young faces from :math:`G_{BA}`'s fakes, :math:`D_B` real old faces
  from :math:`G_{AB}`'s fakes.

**The three losses.** For real faces :math:`a \sim A` and :math:`b \sim B`:

1. *Adversarial* (least-squares GAN, Mao et al., 2017, "Least Squares Generative Adversarial
   Networks"): each discriminator regresses 1 on real images and 0 on fakes, and each
   generator wants its fakes scored 1:

   .. math::

       \mathcal L_{D_B} = \tfrac12\,\mathbb E_b[(D_B(b) - 1)^2] + \tfrac12\,\mathbb E_a[D_B(G_{AB}(a))^2],
       \qquad
       \mathcal L_{GAN}^{A\to B} = \mathbb E_a[(D_B(G_{AB}(a)) - 1)^2],

   and the same with :math:`A` and :math:`B` swapped. The squared error keeps pushing on fakes
   that are already on the "real" side of the boundary but far from the real data, and it does
   not saturate the way the log loss does: training is steadier than with the original GAN loss.

2. *Cycle consistency*: an adversarial loss alone only asks that :math:`G_{AB}(a)` look old,
   not that it be *the same person*; any old face would do. Translating there and back must
   return the input:

   .. math::

       \mathcal L_{cyc} = \mathbb E_a\big[\lVert G_{BA}(G_{AB}(a)) - a\rVert_1\big]
                        + \mathbb E_b\big[\lVert G_{AB}(G_{BA}(b)) - b\rVert_1\big].

3. *Identity* (optional; from Taigman et al., 2017, as used by Zhu et al. for paintings to
   photos): a generator fed a face that is already in its target domain should leave it alone,
   :math:`\mathcal L_{idt} = \mathbb E_b[\lVert G_{AB}(b) - b\rVert_1] + \mathbb E_a[\lVert G_{BA}(a) - a\rVert_1]`.
   It stops the generators from shifting the overall tint (skin tone, lighting) for no reason.

The generators minimise

.. math::

    \mathcal L_G = \mathcal L_{GAN}^{A\to B} + \mathcal L_{GAN}^{B\to A}
                 + \lambda_{cyc}\,\mathcal L_{cyc} + \lambda_{idt}\,\lambda_{cyc}\,\mathcal L_{idt},
    \qquad \lambda_{cyc} = 10,\ \lambda_{idt} = 0.5.

**Two training tricks.** The discriminators are updated with a *history* of generated images
rather than only the latest ones (Shrivastava et al., 2017, "Learning from Simulated and
Unsupervised Images through Adversarial Training"): :class:`ImagePool` keeps 50 past fakes, so a
discriminator cannot simply chase the generator's newest trick and forget older ones. And the
learning rate (Adam, 2e-4, betas (0.5, 0.999)) stays constant for a while and then falls
linearly to zero (:func:`make_scheduler`).

**The networks.** :class:`ResnetGenerator` is the image-transformation network of Johnson,
Alahi and Fei-Fei (2016, "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution") with instance normalisation: a 7x7 stem, two stride-2 downsamplings,
residual blocks (9 for 256 px, 6 for 128 px in the paper), two upsamplings and a 7x7 output
convolution with tanh. :class:`PatchDiscriminator` is the 70x70 PatchGAN of pix2pix: it scores
every overlapping 70x70 patch as real or fake, so it judges texture (skin, wrinkles, hair)
rather than the whole face, with far fewer parameters than a whole-image discriminator.
:class:`Seed003Generator` is the smaller variant that seed 003 describes. Either generator can
be made *residual* (``residual=True``, not in the paper): it adds its input to its output and so
learns only the change to a face (Shen and Liu, 2017), which the short CPU setting relies on.

**Names of the logged terms** (returned by :meth:`CycleGAN.train_step`). The totals match the
five curves seed 002 plots (``loss_G``, ``loss_G_GAN``, ``loss_G_cycle``, ``loss_G_identity``,
``loss_D``); the per-direction terms match junyanz's (``G_A``, ``cycle_A``, ``idt_A``, ``D_A``),
except that here A and B always name the *domain of the image*: A = young, B = old.

============  ===================================================  ====================
term          what it is (weighted, as the optimiser sees it)      junyanz's name
============  ===================================================  ====================
G_GAN_A2B     LSGAN loss of G_AB's old-looking fakes under D_B     G_A
G_GAN_B2A     LSGAN loss of G_BA's young-looking fakes under D_A   G_B
G_cycle_A     10 x L1(G_BA(G_AB(a)), a)                            cycle_A
G_cycle_B     10 x L1(G_AB(G_BA(b)), b)                            cycle_B
G_identity_A  5 x L1(G_BA(a), a)                                   idt_B
G_identity_B  5 x L1(G_AB(b), b)                                   idt_A
D_A           D_A's loss: real young against pooled fake young     D_B
D_B           D_B's loss: real old against pooled fake old         D_A
G, G_GAN, G_cycle, G_identity, D:  the sums (seed 002's curves); G = G_GAN + G_cycle + G_identity
============  ===================================================  ====================
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .training import Precision, Trainable

# --------------------------------------------------------------------------- networks


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


def _conv_in_relu(c_in, c_out, k, stride=1, padding=0, padding_mode="zeros"):
    return [nn.Conv2d(c_in, c_out, k, stride, padding, bias=False, padding_mode=padding_mode),
            nn.InstanceNorm2d(c_out), nn.ReLU(True)]


def _up_in_relu(c_in, c_out, upsample="transposed"):
    if upsample == "nearest":  # nearest-neighbour doubling, then a 3x3 convolution: no checkerboard (Odena et al., 2016)
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3, bias=False),
                nn.InstanceNorm2d(c_out), nn.ReLU(True)]
    if upsample != "transposed":
        raise ValueError(f"upsample={upsample!r}: use 'transposed' or 'nearest'")
    # A 3x3 transposed convolution with stride 2 doubles the size exactly (output_padding=1).
    return [nn.ConvTranspose2d(c_in, c_out, 3, 2, padding=1, output_padding=1, bias=False),
            nn.InstanceNorm2d(c_out), nn.ReLU(True)]


def _to_rgb(c_in):
    return [nn.ReflectionPad2d(3), nn.Conv2d(c_in, 3, 7), nn.Tanh()]


class ResnetGenerator(nn.Module):
    """The CycleGAN generator (Zhu et al., 2017, after Johnson et al., 2016). ``(B, 3, S, S)`` -> same shape in [-1, 1].

    c7s1-ngf, d(2 ngf), d(4 ngf), ``n_blocks`` x R(4 ngf), u(2 ngf), u(ngf), c7s1-3, tanh, where
    c7s1-k is a reflection-padded 7x7 convolution with k filters, d/u a stride-2 3x3 convolution
    down/up, R a residual block; each is followed by instance norm and ReLU. ``S`` must be a
    multiple of 4. The paper uses 9 blocks at 256 px and 6 at 128 px.

    ``residual=True`` (not in the paper) adds the input to the output, ``clamp(x + 2 tanh(...))``:
    the network then learns only the *change* to a face (Shen and Liu, 2017, "Learning Residual
    Images for Face Attribute Manipulation"), and starts out as the identity instead of having to
    learn to redraw every face first. Much faster to train; used for the short CPU setting.
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9, residual: bool = False, mask: bool = False,
                 upsample: str = "transposed"):
        super().__init__()
        self.residual = residual
        layers = [nn.ReflectionPad2d(3), *_conv_in_relu(3, ngf, 7)]
        layers += _conv_in_relu(ngf, ngf * 2, 3, 2, 1) + _conv_in_relu(ngf * 2, ngf * 4, 3, 2, 1)
        layers += [ResidualBlock(ngf * 4) for _ in range(n_blocks)]
        layers += _up_in_relu(ngf * 4, ngf * 2, upsample) + _up_in_relu(ngf * 2, ngf, upsample)
        layers += _to_rgb(ngf)
        self.net = nn.Sequential(*layers)
        self.mask_head = _mask_head(ngf) if mask else None

    def forward(self, x: torch.Tensor, return_mask: bool = False):
        return _output(self, x, return_mask)


def _mask_head(c_in):
    # GANimation's attention: one channel, read from the same features as the colour output.
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(c_in, 1, 7))


#: The mask head's starting bias: sigmoid(-3) = 0.047, so a new mask generator changes under 5% of every pixel.
MASK_INIT_BIAS = -3.0


def _output(gen, x, return_mask: bool = False):
    """The generator's image; with a mask head, ``m * colour + (1 - m) * x`` (and ``m`` when asked)."""
    if gen.mask_head is None:
        y = gen.net(x)
        y = (x + 2 * y).clamp(-1, 1) if gen.residual else y
        return (y, None) if return_mask else y
    h = gen.net[:-3](x)  # the features before the 7x7 colour convolution and its tanh
    colour = gen.net[-3:](h)
    if gen.residual:
        colour = (x + 2 * colour).clamp(-1, 1)
    m = torch.sigmoid(gen.mask_head(h).float()).to(x.dtype)
    y = m * colour + (1 - m) * x
    return (y, m) if return_mask else y


class Seed003Generator(nn.Module):
    """The generator as seed 003 describes it, made buildable. ``(B, 3, S, S)`` -> same shape; ``S`` a multiple of 8.

    Encoder: three 4x4 stride-2 convolutions with ngf, 2 ngf, 4 ngf filters (64, 128, 256),
    reflection-padded, with instance norm and ReLU. ``n_blocks`` residual blocks that are 4 ngf
    wide outside and ``ngf`` (64) wide inside. Decoder: three 3x3 stride-2 transposed
    convolutions down to ngf/2 (32) filters, then a reflection-padded 7x7 convolution to RGB and
    tanh.

    The seed's text cannot be built literally: it halves the image three times but doubles it
    only twice (a 128 px face would come out at 64 px), and a residual block whose layers have
    64 filters cannot be added to a 256-channel input. So its blocks here narrow to 64 channels
    inside, and the decoder gets a third upsampling (4 ngf -> 2 ngf) in front of the two the
    seed names (64 and 32 filters). The result has about a third of the original's parameters
    and works on a 4x smaller bottleneck (16x16 at 128 px instead of 32x32): cheaper, but with
    less room for fine detail such as wrinkles. ``residual`` as for :class:`ResnetGenerator`.
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9, residual: bool = False, mask: bool = False,
                 upsample: str = "transposed"):
        super().__init__()
        self.residual = residual
        layers = []
        for c_in, c_out in ((3, ngf), (ngf, ngf * 2), (ngf * 2, ngf * 4)):
            layers += _conv_in_relu(c_in, c_out, 4, 2, 1, padding_mode="reflect")
        layers += [ResidualBlock(ngf * 4, inner=ngf) for _ in range(n_blocks)]
        layers += (_up_in_relu(ngf * 4, ngf * 2, upsample) + _up_in_relu(ngf * 2, ngf, upsample)
                   + _up_in_relu(ngf, max(1, ngf // 2), upsample))
        layers += _to_rgb(max(1, ngf // 2))
        self.net = nn.Sequential(*layers)
        self.mask_head = _mask_head(max(1, ngf // 2)) if mask else None

    def forward(self, x: torch.Tensor, return_mask: bool = False):
        return _output(self, x, return_mask)


#: Generator designs by name: ``"resnet"`` (Zhu et al., the default) or ``"seed003"``.
GENERATORS = {"resnet": ResnetGenerator, "seed003": Seed003Generator}


def make_generator(style: str = "resnet", ngf: int = 64, n_blocks: int = 9, residual: bool = False,
                   mask: bool = False, upsample: str = "transposed") -> nn.Module:
    """A generator by design name (see :data:`GENERATORS`); ``mask=True`` adds GANimation's attention mask,
    ``upsample="nearest"`` replaces the transposed convolutions by nearest-neighbour doubling and a convolution."""
    try:
        return GENERATORS[style](ngf=ngf, n_blocks=n_blocks, residual=residual, mask=mask, upsample=upsample)
    except KeyError:
        raise ValueError(f"no generator design {style!r}; choose one of {sorted(GENERATORS)}") from None


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al., 2017): ``(B, 3, S, S)`` -> ``(B, 1, S', S')``, one score per image patch.

    ``n_layers`` stride-2 4x4 convolutions (64, 128, 256 filters for ``ndf=64``), then two
    stride-1 4x4 convolutions (512 filters, then 1). LeakyReLU(0.2) everywhere and instance norm
    on all but the first layer. With ``n_layers=3`` each output sees a 70x70 patch of the input
    (:func:`receptive_field`); at 128 px the output is 14x14 scores, at 64 px 6x6. The scores are
    raw (no sigmoid): the LSGAN loss regresses them to 1 or 0.
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ch, out, 4, stride, 1, bias=False), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch = out
        layers += [nn.Conv2d(ch, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def receptive_field(n_layers: int = 3) -> int:
    """How many input pixels across one PatchGAN score sees: 70 for ``n_layers=3``.

    Walking back from one output: each 4x4 layer with stride s turns a field of r into
    ``(r - 1) * s + 4``; the last two layers have stride 1, the others stride 2.
    """
    r = 1
    for stride in reversed([2] * n_layers + [1, 1]):
        r = (r - 1) * stride + 4
    return r


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """CycleGAN's initialisation: every convolution's weights from N(0, ``std``), biases 0. Returns ``net``.

    A residual generator's output convolution starts at zero instead, so that the generator
    starts out as the identity.
    """
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if isinstance(net, tuple(GENERATORS.values())) and net.residual:
        nn.init.zeros_(net.net[-2].weight)  # the 7x7 convolution before the tanh
    if getattr(net, "mask_head", None) is not None:  # the mask starts almost closed: nearly the identity
        nn.init.zeros_(net.mask_head[-1].weight)
        nn.init.constant_(net.mask_head[-1].bias, MASK_INIT_BIAS)
    return net


def count_parameters(net: nn.Module) -> int:
    """The number of trainable parameters of ``net``."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


class AgeAuxClassifier(nn.Module):
    """A small young-vs-old classifier whose verdict on the fakes the generators learn from (``lambda_age``).

    It is *not* the course's judge (:class:`helpers.metrics.AgeClassifier`): another design
    (strided 4x4 convolutions and LeakyReLU, no normalisation, one logit) trained from scratch
    inside :meth:`CycleGAN.train_step` on the real training faces of the two domains only (young
    -> 0, old -> 1). It reads the faces average-pooled to ``image_size`` (32 px by default), so its
    gradient asks the generators for coarse, visible changes (hair colour, skin, face shape) rather
    than for pixel-level patterns that would fool only this one network. The auxiliary domain
    classifier of StarGAN (Choi et al., 2018) plays the same part, there on the discriminator's trunk.
    """

    def __init__(self, ndf: int = 16, image_size: int = 32):
        super().__init__()
        self.image_size = int(image_size)
        layers, c = [], 3
        for w in (ndf, ndf * 2, ndf * 4):
            layers += [nn.Conv2d(c, w, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            c = w
        layers += [nn.Conv2d(c, ndf * 8, 3, 1, 1), nn.LeakyReLU(0.2, True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(ndf * 8, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` logits of "old" for faces in [-1, 1] of any size."""
        if x.shape[-1] != self.image_size:
            x = F.adaptive_avg_pool2d(x, self.image_size)
        return self.net(x).squeeze(1)


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


def mask_penalty(m: torch.Tensor, weight: float, tv_weight: float = 0.0) -> torch.Tensor:
    """GANimation's attention regularisers (Pumarola et al., 2018): ``weight`` x mean(m) keeps the edit
    small (only where the face must change), ``tv_weight`` x total variation keeps the mask smooth."""
    loss = weight * m.float().mean()
    if tv_weight:
        m = m.float()
        tv = (m[..., 1:, :] - m[..., :-1, :]).pow(2).mean() + (m[..., :, 1:] - m[..., :, :-1]).pow(2).mean()
        loss = loss + tv_weight * tv
    return loss


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


class CycleLoss(nn.Module):
    """``weight`` x mean absolute error between a round trip and the input, ``|F(G(x)) - x|``."""

    def __init__(self, weight: float = 10.0):
        super().__init__()
        self.weight = float(weight)

    def forward(self, reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return self.weight * F.l1_loss(reconstructed.float(), real.float())


class IdentityLoss(CycleLoss):
    """``weight`` x mean absolute error ``|G(y) - y|`` for a face ``y`` already in G's target domain.

    CycleGAN weighs it at half the cycle weight (0.5 x 10 = 5); weight 0 switches it off.
    """

    def __init__(self, weight: float = 5.0):
        super().__init__(weight)


# --------------------------------------------------------------------------- the image pool


class ImagePool:
    """A history of up to ``size`` generated images for the discriminators (Shrivastava et al., 2017).

    ``pool(fakes)`` returns a batch of the same size. Until the pool is full, every new image is
    stored and returned as it is. After that, each new image is, with probability 1/2, swapped
    for a random stored one (the new one takes its place in the pool), and otherwise returned
    directly. ``size=0`` turns the pool off: the batch passes through.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = int(size)
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for img in images:
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif self.rng.random() < 0.5:
                i = self.rng.randrange(self.size)
                old = self.images[i].to(img.device)
                self.images[i] = img.clone()
                out.append(old)
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict:
        images = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        version, state, gauss = self.rng.getstate()
        return {"images": images, "rng": torch.tensor(state, dtype=torch.int64), "rng_version": version}

    def load_state_dict(self, state: dict) -> None:
        self.images = list(state["images"].unbind(0)) if state["images"].numel() else []
        self.rng.setstate((state["rng_version"], tuple(int(v) for v in state["rng"].tolist()), None))


class FaceMemory:
    """The last ``size`` real faces seen, kept as uint8 on the CPU, to give the auxiliary age classifier bigger batches.

    At batch 1, one training step brings one face of each domain: far too few for a classifier
    to learn age from. ``add(faces)`` stores a batch (in [-1, 1]); ``sample(k)`` draws ``k`` of
    the stored faces (with replacement) back in [-1, 1]. Not checkpointed: after a resume it
    fills again from the faces that come.
    """

    def __init__(self, size: int = 2000, seed: int = 0):
        self.size, self.n, self.next = int(size), 0, 0
        self.images: torch.Tensor | None = None
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    @torch.no_grad()
    def add(self, faces: torch.Tensor) -> None:
        x = faces.detach().float().cpu().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        if self.images is None:
            self.images = torch.empty((self.size, *x.shape[1:]), dtype=torch.uint8)
        for img in x:
            self.images[self.next] = img
            self.next = (self.next + 1) % self.size
            self.n = min(self.n + 1, self.size)

    def sample(self, k: int, device=None) -> torch.Tensor:
        idx = torch.randint(0, self.n, (k,), generator=self.g)
        return self.images[idx].to(device).float().div(127.5).sub(1)


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


# --------------------------------------------------------------------------- the model

_DIRECTIONS = {"A2B": "A2B", "B2A": "B2A", "young2old": "A2B", "old2young": "B2A"}


class CycleGAN(Trainable):
    """Two generators (G_AB: young -> old, G_BA: old -> young), two PatchGAN discriminators
    (D_A judges young faces, D_B old ones), their optimisers, schedulers and image pools.

    ``train_step((real_a, real_b))`` takes a batch of young and a batch of old faces in [-1, 1]
    and returns the named loss terms (see the module docstring). ``translate(x, "A2B")`` ages
    faces, ``translate(x, "B2A")`` rejuvenates them.

    ``compile=True`` runs the networks through ``torch.compile`` (worth it on a GPU for long
    runs; the first steps are slow while it compiles).
    """

    name = "cyclegan"

    def __init__(
        self,
        image_size: int = 128,
        generator: str = "resnet",
        ngf: int = 64,
        ndf: int = 64,
        n_blocks: int = 9,
        residual: bool = False,
        n_layers_D: int = 3,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        lr_policy: str = "linear",
        n_epochs_constant: int = 100,
        n_epochs_decay: int = 100,
        device="cpu",
        precision: Precision | None = None,
        compile: bool = False,
        seed: int = 0,
        mask: bool = False,
        lambda_mask: float = 0.0,
        lambda_mask_tv: float = 0.0,
        lambda_age: float = 0.0,
        age_aux_size: int = 32,
        age_aux_ndf: int = 16,
        age_aux_lr: float = 0.0,
        age_aux_fakes: bool = False,
        age_aux_batch: int = 0,
        diffaug: str = "",
        upsample: str = "transposed",
    ):
        if image_size % (8 if generator == "seed003" else 4):
            raise ValueError(f"image_size {image_size} must be a multiple of {8 if generator == 'seed003' else 4} "
                             f"for the {generator!r} generator")
        self.device = torch.device(device)
        self.precision = precision or Precision(self.device)
        self.config = dict(image_size=image_size, generator=generator, ngf=ngf, ndf=ndf, n_blocks=n_blocks,
                           residual=residual, n_layers_D=n_layers_D, lambda_cycle=lambda_cycle,
                           lambda_identity=lambda_identity, pool_size=pool_size, lr=lr, beta1=beta1, beta2=beta2, lr_policy=lr_policy,
                           n_epochs_constant=n_epochs_constant, n_epochs_decay=n_epochs_decay)
        # The options added for real faces go into the config only when they are on, so that the
        # checkpoints of runs made before them (whose config lacks them) still load.
        options = dict(mask=mask, lambda_mask=lambda_mask, lambda_mask_tv=lambda_mask_tv, lambda_age=lambda_age,
                       age_aux_size=age_aux_size, age_aux_ndf=age_aux_ndf, age_aux_lr=age_aux_lr, age_aux_fakes=age_aux_fakes,
                       age_aux_batch=age_aux_batch, diffaug=diffaug, upsample=upsample)
        defaults = dict(mask=False, lambda_mask=0.0, lambda_mask_tv=0.0, lambda_age=0.0, age_aux_size=32,
                        age_aux_ndf=16, age_aux_lr=0.0, age_aux_fakes=False, age_aux_batch=0,
                        diffaug="", upsample="transposed")
        if lambda_age <= 0:  # the classifier's settings mean nothing without it
            for k in ("age_aux_size", "age_aux_ndf", "age_aux_lr", "age_aux_fakes", "age_aux_batch"):
                options.pop(k)
        self.config.update({k: v for k, v in options.items() if v != defaults[k]})
        if diffaug:  # refuse an unknown policy name now, not at the first step
            diff_augment(torch.zeros(1, 3, 8, 8), diffaug)
        self.mask, self.lambda_mask, self.lambda_mask_tv = bool(mask), float(lambda_mask), float(lambda_mask_tv)
        self.lambda_age, self.diffaug, self.age_aux_fakes = float(lambda_age), str(diffaug), bool(age_aux_fakes)
        self.age_aux_batch = int(age_aux_batch)
        # remembered real faces of each domain, for the age classifier's bigger batches (age_aux_batch > 0)
        self.memory_A, self.memory_B = (FaceMemory(seed=seed + 2), FaceMemory(seed=seed + 3)) \
            if self.age_aux_batch > 0 and self.lambda_age > 0 else (None, None)

        def build(net):
            return self.precision.prepare(init_weights(net).to(self.device))

        with torch.random.fork_rng(devices=[]):  # the same seed gives the same starting weights,
            torch.manual_seed(seed)  # without touching the caller's random state
            self.networks = {
                "G_AB": build(make_generator(generator, ngf, n_blocks, residual, mask, upsample)),
                "G_BA": build(make_generator(generator, ngf, n_blocks, residual, mask, upsample)),
                "D_A": build(PatchDiscriminator(ndf, n_layers_D)),
                "D_B": build(PatchDiscriminator(ndf, n_layers_D)),
            }
            if self.lambda_age > 0:  # the auxiliary young/old classifier (its own network, not the judge)
                # PyTorch's default initialisation: N(0, 0.02) would shrink the signal through its unnormalised layers
                self.networks["C_age"] = self.precision.prepare(AgeAuxClassifier(age_aux_ndf, age_aux_size).to(self.device))
        # The networks the step calls: the same modules, or their compiled versions (which share
        # the parameters). Checkpoints always save the plain modules in self.networks.
        run = {k: torch.compile(v) if compile else v for k, v in self.networks.items()}
        self.G_AB, self.G_BA, self.D_A, self.D_B = run["G_AB"], run["G_BA"], run["D_A"], run["D_B"]
        self.C_age = run.get("C_age")

        nets = self.networks
        self.opt_G = torch.optim.Adam(itertools.chain(nets["G_AB"].parameters(), nets["G_BA"].parameters()),
                                      lr=lr, betas=(beta1, beta2))
        self.opt_D = torch.optim.Adam(itertools.chain(nets["D_A"].parameters(), nets["D_B"].parameters()),
                                      lr=lr, betas=(beta1, beta2))
        self.optimizers = {"G": self.opt_G, "D": self.opt_D}
        if self.C_age is not None:
            self.opt_C = torch.optim.Adam(nets["C_age"].parameters(), lr=age_aux_lr or lr, betas=(beta1, beta2))
            self.optimizers["C"] = self.opt_C
        self.schedulers = {k: make_scheduler(opt, lr_policy, n_epochs_constant, n_epochs_decay)
                           for k, opt in self.optimizers.items()}

        self.gan_loss = LSGANLoss()
        self.cycle_loss = CycleLoss(lambda_cycle)
        self.identity_loss = IdentityLoss(lambda_identity * lambda_cycle)
        self.pool_A = ImagePool(pool_size, seed=seed)      # past fake young faces, for D_A
        self.pool_B = ImagePool(pool_size, seed=seed + 1)  # past fake old faces, for D_B

    @classmethod
    def from_settings(cls, s, device="cpu", precision: Precision | None = None, compile: bool = False) -> "CycleGAN":
        """Build from a :class:`helpers.config.CycleGANSettings`."""
        return cls(image_size=s.image_size, generator=s.generator, ngf=s.ngf, ndf=s.ndf, n_blocks=s.n_blocks,
                   residual=s.residual, n_layers_D=s.n_layers_D, lambda_cycle=s.lambda_cycle, lambda_identity=s.lambda_identity, pool_size=s.pool_size,
                   lr=s.lr, beta1=s.beta1, lr_policy=s.lr_policy, n_epochs_constant=s.n_epochs_constant,
                   n_epochs_decay=s.n_epochs_decay, device=device, precision=precision, compile=compile, seed=s.seed,
                   mask=s.mask, lambda_mask=s.lambda_mask, lambda_mask_tv=s.lambda_mask_tv, lambda_age=s.lambda_age,
                   age_aux_size=s.age_aux_size, age_aux_ndf=s.age_aux_ndf, age_aux_lr=s.age_aux_lr, age_aux_fakes=s.age_aux_fakes,
                   age_aux_batch=s.age_aux_batch, diffaug=s.diffaug,
                   upsample=s.upsample)

    def train_step(self, batch) -> dict:
        real_a, real_b = batch  # a batch of young faces and a batch of old faces, unpaired
        amp = self.precision

        # 1. Generators. The discriminators only judge here: freezing them saves computing
        #    gradients for their weights, which this update does not change.
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        aug = self._augment
        if self.C_age is not None:
            self.C_age.requires_grad_(False)
        with amp.autocast():
            if self.mask:  # the masks come out too, for their penalty
                fake_b, m_ab = self.G_AB(real_a, return_mask=True)  # young -> old
                rec_a, m_aba = self.G_BA(fake_b, return_mask=True)  # ... -> young again: should give back real_a
                fake_a, m_ba = self.G_BA(real_b, return_mask=True)  # old -> young
                rec_b, m_bab = self.G_AB(fake_a, return_mask=True)  # ... -> old again: should give back real_b
            else:
                fake_b = self.G_AB(real_a)  # young -> old
                rec_a = self.G_BA(fake_b)   # ... -> young again: should give back real_a
                fake_a = self.G_BA(real_b)  # old -> young
                rec_b = self.G_AB(fake_a)   # ... -> old again: should give back real_b
            losses = {
                "G_GAN_A2B": self.gan_loss(self.D_B(aug(fake_b)), True),  # fool the old-face judge
                "G_GAN_B2A": self.gan_loss(self.D_A(aug(fake_a)), True),  # fool the young-face judge
                "G_cycle_A": self.cycle_loss(rec_a, real_a),
                "G_cycle_B": self.cycle_loss(rec_b, real_b),
            }
            if self.mask:
                losses["G_mask"] = sum(mask_penalty(m, self.lambda_mask, self.lambda_mask_tv)
                                       for m in (m_ab, m_aba, m_ba, m_bab))
            if self.C_age is not None:  # the aged fakes should read old (1), the rejuvenated ones young (0)
                logit_b, logit_a = self.C_age(aug(fake_b)).float(), self.C_age(aug(fake_a)).float()
                losses["G_age_A2B"] = self.lambda_age * F.binary_cross_entropy_with_logits(
                    logit_b, torch.ones_like(logit_b))
                losses["G_age_B2A"] = self.lambda_age * F.binary_cross_entropy_with_logits(
                    logit_a, torch.zeros_like(logit_a))
            if self.identity_loss.weight > 0:  # an old face given to G_AB should stay as it is
                losses["G_identity_A"] = self.identity_loss(self.G_BA(real_a), real_a)
                losses["G_identity_B"] = self.identity_loss(self.G_AB(real_b), real_b)
            loss_G = sum(losses.values())
        if self.identity_loss.weight == 0:  # switched off: logged as 0, so every run has the same terms
            losses["G_identity_A"] = losses["G_identity_B"] = torch.zeros((), device=loss_G.device)
        self.opt_G.zero_grad(set_to_none=True)
        amp.backward(loss_G)
        amp.step(self.opt_G)

        # 2. Discriminators: real faces -> 1, fakes -> 0, the fakes drawn partly from the history
        #    pools. The fakes are detached: this update must not reach the generators.
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        old_fake_a = self.pool_A(fake_a).contiguous(memory_format=amp.memory_format)
        old_fake_b = self.pool_B(fake_b).contiguous(memory_format=amp.memory_format)
        with amp.autocast():
            losses["D_A"] = 0.5 * (self.gan_loss(self.D_A(aug(real_a)), True)
                                   + self.gan_loss(self.D_A(aug(old_fake_a)), False))
            losses["D_B"] = 0.5 * (self.gan_loss(self.D_B(aug(real_b)), True)
                                   + self.gan_loss(self.D_B(aug(old_fake_b)), False))
        self.opt_D.zero_grad(set_to_none=True)
        amp.backward(losses["D_A"] + losses["D_B"])
        amp.step(self.opt_D)

        # 3. The auxiliary age classifier, on real training faces: young -> 0, old -> 1. With
        #    age_aux_fakes, also on the (detached) fakes, labelled with the age they were made from:
        #    it then learns to see through whatever shortcut the generators take, and only a face
        #    that really looks old reads old (an adversarial classifier, in the spirit of the twin
        #    auxiliary classifiers of Gong et al., 2019).
        if self.C_age is not None:
            self.C_age.requires_grad_(True)
            faces, labels = [real_a, real_b], [0.0, 1.0]
            if self.memory_A is not None:
                self.memory_A.add(real_a)
                self.memory_B.add(real_b)
                k = self.age_aux_batch
                faces += [self.memory_A.sample(k, real_a.device).to(real_a.dtype),
                          self.memory_B.sample(k, real_b.device).to(real_b.dtype)]
                labels += [0.0, 1.0]
            if self.age_aux_fakes:
                faces, labels = faces + [fake_b.detach(), fake_a.detach()], labels + [0.0, 1.0]
            with amp.autocast():
                logits = self.C_age(aug(torch.cat(faces))).float()
                target = torch.cat([torch.full((len(f),), v) for f, v in zip(faces, labels)]).to(logits.device)
                losses["C_age"] = F.binary_cross_entropy_with_logits(logits, target)
            self.opt_C.zero_grad(set_to_none=True)
            amp.backward(losses["C_age"])
            amp.step(self.opt_C)

        # The seeds' five curves: the sums over both directions.
        losses["G_GAN"] = losses["G_GAN_A2B"] + losses["G_GAN_B2A"]
        losses["G_cycle"] = losses["G_cycle_A"] + losses["G_cycle_B"]
        losses["G_identity"] = losses["G_identity_A"] + losses["G_identity_B"]
        if self.C_age is not None:
            losses["G_age"] = losses["G_age_A2B"] + losses["G_age_B2A"]
        losses["G"] = loss_G
        losses["D"] = losses["D_A"] + losses["D_B"]
        return {k: torch.as_tensor(v).detach() for k, v in losses.items()}

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment with the model's policy (``diffaug``) on what the discriminators and the age classifier see."""
        return diff_augment(x, self.diffaug) if self.diffaug else x

    # ----- checkpointing the pools (the Trainer calls these)

    def extra_state(self) -> dict:
        return {"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        if "pool_A" in state:
            self.pool_A.load_state_dict(state["pool_A"])
            self.pool_B.load_state_dict(state["pool_B"])

    # ----- inference

    def generator(self, direction: str) -> nn.Module:
        """``G_AB`` for ``"A2B"`` / ``"young2old"``, ``G_BA`` for ``"B2A"`` / ``"old2young"``."""
        try:
            d = _DIRECTIONS[direction]
        except KeyError:
            raise ValueError(f"direction {direction!r}: use one of {sorted(_DIRECTIONS)}") from None
        return self.networks["G_AB" if d == "A2B" else "G_BA"]

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "A2B", batch_size: int = 64) -> torch.Tensor:
        """Translate faces ``x`` (float in [-1, 1] or uint8, ``(B, 3, H, W)``): ``"A2B"`` ages them, ``"B2A"`` rejuvenates.

        Returns float32 images in [-1, 1] of the same shape, on the CPU. Runs in chunks of
        ``batch_size`` so a whole test set fits in memory.
        """
        G = self.generator(direction)
        was_training = G.training
        G.eval()  # instance norm has no running statistics, so this changes nothing; it is good form
        outs = []
        try:
            for chunk in torch.as_tensor(x).split(batch_size):
                chunk = chunk.to(self.device)
                if chunk.dtype == torch.uint8:
                    chunk = chunk.float().div(127.5).sub(1.0)
                chunk = chunk.contiguous(memory_format=self.precision.memory_format)
                with self.precision.autocast():
                    outs.append(G(chunk).float().cpu())
        finally:
            G.train(was_training)
        return torch.cat(outs).contiguous() if outs else torch.empty(0)

    def cycle(self, x: torch.Tensor, direction: str = "A2B", batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """``(translated, reconstructed)``: ``x`` taken to the other domain and back again."""
        d = _DIRECTIONS.get(direction, direction)
        there = self.translate(x, d, batch_size)
        back = self.translate(there, "B2A" if d == "A2B" else "A2B", batch_size)
        return there, back


# --------------------------------------------------------------------------- data


class UnpairedBatches:
    """Unpaired batches ``(young, old)`` from two :class:`helpers.cache.BatchLoader` s.

    An epoch has as many batches as the *larger* domain; the smaller one is reshuffled and
    started again whenever it runs out (CycleGAN's habit: every face of both domains is seen at
    least once per epoch). Its ``state_dict`` holds both loaders' shuffling states, so the
    :class:`helpers.training.Trainer` resumes exactly. ``device``: where to move the batches, for
    loaders that keep their faces elsewhere (a dataset too big for the GPU stays on the CPU).
    """

    def __init__(self, loader_a, loader_b, device=None):
        self.a, self.b = loader_a, loader_b
        self.device = None if device is None else torch.device(device)

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __iter__(self):
        it_a, it_b = iter(self.a), iter(self.b)
        for _ in range(len(self)):
            a = next(it_a, None)
            if a is None:
                it_a = iter(self.a)
                a = next(it_a)
            b = next(it_b, None)
            if b is None:
                it_b = iter(self.b)
                b = next(it_b)
            if self.device is not None and a.device != self.device:
                a, b = a.to(self.device, non_blocking=True), b.to(self.device, non_blocking=True)
            yield a, b

    def state_dict(self) -> dict:
        return {"a": self.a.state_dict(), "b": self.b.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.a.load_state_dict(state["a"])
        self.b.load_state_dict(state["b"])


def save_translations(model: CycleGAN, images, folder, direction: str = "A2B", names=None,
                      batch_size: int = 64) -> list[Path]:
    """Translate a whole set of faces and write each result as a PNG in ``folder``; returns the paths.

    ``images``: uint8 or [-1, 1] float ``(N, 3, H, W)``. ``names``: file stems (default
    ``00000``, ``00001`` ...); giving the original file names keeps the labels with the faces.
    """
    from PIL import Image

    from .cache import to_uint8

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = to_uint8(model.translate(images, direction, batch_size)).permute(0, 2, 3, 1).numpy()
    names = [f"{i:05d}" for i in range(len(out))] if names is None else [Path(str(n)).name.split(".")[0] for n in names]
    paths = []
    for img, name in zip(out, names):
        p = folder / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(img)).save(p)
        paths.append(p)
    return paths


# --------------------------------------------------------------------------- saved generators


def save_generators(model: CycleGAN, path) -> Path:
    """Write both generators' weights and the model's config to one file (for notebooks 07 and 08)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"config": dict(model.config), "G_AB": model.networks["G_AB"].state_dict(),
             "G_BA": model.networks["G_BA"].state_dict()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_generators(path, device="cpu") -> CycleGAN:
    """A :class:`CycleGAN` with the generators saved by :func:`save_generators`, ready to ``translate``.

    The discriminators are left untrained: this is for inference.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = {k: v for k, v in state["config"].items()}
    model = CycleGAN(**cfg, device=device)
    for k in ("G_AB", "G_BA"):
        model.networks[k].load_state_dict(state[k])
    return model


# --------------------------------------------------------------------------- a whole run (notebook and CLI)


def default_settings(device="cpu"):
    """:data:`helpers.config.CYCLEGAN` on a CUDA GPU, :data:`helpers.config.CYCLEGAN_CPU` elsewhere."""
    from . import config

    return config.CYCLEGAN if torch.device(device).type == "cuda" else config.CYCLEGAN_CPU


def toy_ground_truth(table, age: float, size: int) -> torch.Tensor:
    """Each toy face of ``table`` redrawn at ``age`` (same person, pose and light): uint8 ``(N, 3, size, size)``."""
    from PIL import Image

    from .toyfaces import render_face

    imgs = [np.asarray(render_face(int(r.identity), float(age), int(r.variant)).resize((size, size), Image.BILINEAR))
            for r in table.itertuples()]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


def result_rows(model: CycleGAN, young, old, truth_old=None, truth_young=None) -> tuple[torch.Tensor, list[str]]:
    """The result grid's rows, stacked: young faces, aged, (the truth,) back; old faces, rejuvenated, (the truth,) back.

    ``young`` / ``old``: equal-sized batches (uint8 or [-1, 1]); ``truth_old`` / ``truth_young``:
    the same people drawn at the target age (toy faces only). Returns ``(images, labels)`` with
    one label per row, for :func:`show_results` or ``plots.make_grid(images, nrow=len(young))``.
    """
    from .cache import to_float

    def f(x):
        x = torch.as_tensor(x)
        return to_float(x) if x.dtype == torch.uint8 else x.float().cpu()

    aged, aged_back = model.cycle(young, "A2B")
    younger, younger_back = model.cycle(old, "B2A")
    rows = [(f(young), "young (test)"), (aged, "-> old (G_AB)")]
    if truth_old is not None:
        rows.append((f(truth_old), "truth: same face, old"))
    rows += [(aged_back, "-> young again"), (f(old), "old (test)"), (younger, "-> young (G_BA)")]
    if truth_young is not None:
        rows.append((f(truth_young), "truth: same face, young"))
    rows.append((younger_back, "-> old again"))
    return torch.cat([r for r, _ in rows]), [label for _, label in rows]


def show_results(images: torch.Tensor, labels: list[str], title: str | None = None, size: float = 1.1):
    """Draw :func:`result_rows` as a grid with a label on each row; returns the figure."""
    import matplotlib.pyplot as plt

    from .plots import make_grid

    n_rows = len(labels)
    ncol = len(images) // n_rows
    grid = make_grid(images, nrow=ncol)
    fig, ax = plt.subplots(figsize=(size * ncol + 1.6, size * n_rows + (0.4 if title else 0)))
    ax.imshow(grid)
    h = grid.shape[0] / n_rows
    ax.set_yticks([h * (i + 0.5) for i in range(n_rows)], labels)
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


#: The loss curves grouped as seed 002 plots them, plus each direction's discriminator.
LOSS_GROUPS = {
    "generators: total and parts": ["G", "G_GAN", "G_cycle", "G_identity"],
    "adversarial, per direction": ["G_GAN_A2B", "G_GAN_B2A"],
    "cycle and identity, per domain": ["G_cycle_A", "G_cycle_B", "G_identity_A", "G_identity_B"],
    "discriminators": ["D_A", "D_B"],
}


@dataclass
class CycleGANRun:
    """Everything :func:`setup_cyclegan` builds: settings, data, model, trainer."""

    settings: object
    device: torch.device
    source: str
    young: object  # the young age range (an AgeRange)
    old: object
    model: CycleGAN
    data: UnpairedBatches
    train_a: object  # FaceCache of the young training faces (at load_size)
    train_b: object
    test_a: object  # FaceCache of the young test faces (at image_size)
    test_b: object
    trainer: object
    snapshots: object
    run_dir: Path

    def train(self, epochs: int | None = None, steps: int | None = None):
        """Train to ``epochs`` (default: all the settings' epochs) or ``steps`` in total; returns the history."""
        if epochs is None and steps is None:
            epochs = self.settings.n_epochs_constant + self.settings.n_epochs_decay
        return self.trainer.fit(epochs=epochs, steps=steps)

    def show_faces(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` young and old test faces (uint8), the same ones in every grid."""
        n = n or self.settings.n_show
        return self.test_a.tensor()[:n], self.test_b.tensor()[:n]

    @property
    def is_toy(self) -> bool:
        return "identity" in self.test_a.table.columns and self.source == "toy"

    def target_ages(self) -> tuple[float, float]:
        """The median age of the old and of the young training faces: where a translation should land."""
        return float(self.train_b.table["age"].median()), float(self.train_a.table["age"].median())

    def results(self, n: int | None = None, truth: bool = True) -> tuple[torch.Tensor, list[str]]:
        """:func:`result_rows` on the fixed test faces; with the toy ground truth where there is one."""
        a, b = self.show_faces(n)
        truth_old = truth_young = None
        if truth and self.is_toy:
            old_age, young_age = self.target_ages()
            k = len(a)
            truth_old = toy_ground_truth(self.test_a.table.iloc[:k], old_age, self.settings.image_size)
            truth_young = toy_ground_truth(self.test_b.table.iloc[:len(b)], young_age, self.settings.image_size)
        return result_rows(self.model, a, b, truth_old, truth_young)

    def save_outputs(self) -> dict:
        """Write the results: loss curves, the result grid, both translated test sets and the generators."""
        from .plots import make_grid, save_image

        out = {}
        history = self.trainer.history
        if len(history):
            have = set(history.terms)
            fig = history.plot(groups={k: [t for t in v if t in have] for k, v in LOSS_GROUPS.items()})
            fig.savefig(self.run_dir / "losses.png", dpi=90)
            out["losses"] = self.run_dir / "losses.png"
            import matplotlib.pyplot as plt

            plt.close(fig)
        images, labels = self.results()
        out["grid"] = save_image(make_grid(images, nrow=len(images) // len(labels)), self.run_dir / "results.png")
        for direction, cache in (("young2old", self.test_a), ("old2young", self.test_b)):
            out[direction] = self.run_dir / "translated" / direction
            save_translations(self.model, cache.tensor(), out[direction], direction,
                              names=[Path(p).name for p in cache.table["path"]])
        out["generators"] = save_generators(self.model, self.run_dir / "generators.pt")
        return out


def _data_device(device: torch.device, nbytes: int) -> torch.device:
    """Keep the uint8 faces on the GPU when they take under a third of its free memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return device if nbytes < free / 3 else torch.device("cpu")
    return device


def setup_cyclegan(settings=None, data: str | None = None, data_path=None, device=None, run_dir=None,
                   young=None, old=None, max_images: int | None = None, resume: bool = True,
                   progress: bool = True, verbose: bool = True, compile: bool = False) -> CycleGANRun:
    """Faces, domains, model, trainer and result snapshots for a CycleGAN run, resumed from ``run_dir`` if it has one.

    ``data``: a face source (default ``config.DATA_SOURCE``, "auto": UTKFace when at hand, toy
    faces otherwise). ``young`` / ``old``: age ranges (default: the source's preset, 15-30 and
    50+ for UTKFace and the toy faces). ``settings``: a :class:`helpers.config.CycleGANSettings`
    (default: :func:`default_settings` for the device). ``compile=True`` runs the networks
    through ``torch.compile`` (for long GPU runs; the first steps wait for the compiler).
    """
    from . import config, splits
    from .cache import BatchLoader, build_cache
    from .sources import MissingCredentials, load_faces
    from .training import Precision, Snapshots, Trainer, pick_device, seed_everything

    device = pick_device(device)
    s = settings or default_settings(device)
    seed_everything(s.seed)
    precision = Precision(device)
    source = data or config.DATA_SOURCE
    try:
        faces = load_faces(source, path=data_path, verbose=verbose, max_images=max_images or config.DATA.max_images)
    except MissingCredentials as err:
        if verbose:
            print(f"{err}\n-> carrying on with the toy faces")
        faces = load_faces("toy", verbose=verbose)
    source = str(faces["source"].iloc[0])
    preset = splits.PRESETS.get(source, splits.PRESETS["utkface"])
    young, old = splits.check_ranges([young or preset.young, old or preset.old])
    train_df, test_df = splits.train_test_split(faces, config.DATA.test_fraction, config.DATA.split_seed)
    train_a, train_b = splits.split_domains(train_df, young, old)
    test_a, test_b = splits.split_domains(test_df, young, old)

    caches = [build_cache(df, size, verbose=verbose) for df, size in
              ((train_a, s.load_size), (train_b, s.load_size), (test_a, s.image_size), (test_b, s.image_size))]
    data_device = _data_device(device, caches[0].nbytes + caches[1].nbytes)

    def loader(cache, seed):
        return BatchLoader(cache, s.batch_size, device=data_device, crop=s.image_size, flip=True, seed=seed,
                           memory_format=precision.memory_format)

    batches = UnpairedBatches(loader(caches[0], s.seed), loader(caches[1], s.seed + 1), device=device)
    model = CycleGAN.from_settings(s, device=device, precision=precision, compile=compile)
    run_dir = Path(run_dir) if run_dir is not None else config.RUNS_DIR / s.run_name
    trainer = Trainer(model, batches, run_dir, checkpoint_every=s.checkpoint_every, resume=resume, progress=progress,
                      config={"data": source, "young": str(young), "old": str(old), "load_size": s.load_size,
                              "batch_size": s.batch_size})
    run = CycleGANRun(s, device, source, young, old, model, batches, *caches, trainer, None, run_dir)

    def snapshot_images():
        images, labels = run.results(truth=False)
        return images

    run.snapshots = Snapshots(snapshot_images, run_dir / "samples", nrow=min(s.n_show, len(caches[2]), len(caches[3])))
    trainer.every(s.sample_every, run.snapshots)
    if trainer.step == 0:
        run.snapshots(trainer)  # the untrained generators: the first frame
    return run


def run_cli(args) -> None:
    """``python -m helpers.train cyclegan ...``: train (or resume) and write the run folder's results.

    ``--epochs E`` trains E epochs in all, the first half at the full learning rate.
    """
    import shutil
    import time
    from dataclasses import replace

    from . import config
    from .train import prepare_run_dir
    from .training import pick_device

    device = pick_device(args.device)
    s = default_settings(device)
    if args.epochs is not None:
        s = replace(s, n_epochs_constant=args.epochs - args.epochs // 2, n_epochs_decay=args.epochs // 2)
    if args.batch_size is not None:
        s = replace(s, batch_size=args.batch_size)
    run_dir = prepare_run_dir(args, config.RUNS_DIR / s.run_name)
    t0 = time.time()
    run = setup_cyclegan(s, data=args.data, data_path=args.data_path, device=device, run_dir=run_dir,
                         max_images=args.max_images)
    print(f"{run.source}: young {run.young} ({len(run.train_a):,} train / {len(run.test_a):,} test), "
          f"old {run.old} ({len(run.train_b):,} / {len(run.test_b):,}); {s.image_size}px crops of {s.load_size}px, "
          f"{len(run.data)} batches of {s.batch_size} per epoch, on {device} ({run.model.precision}); "
          f"data ready in {time.time() - t0:.0f}s")
    t1 = time.time()
    history = run.train(steps=args.steps)
    t_train = time.time() - t1
    out = run.save_outputs()
    if args.save_grid:
        Path(args.save_grid).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out["grid"], args.save_grid)
    last = history.last()
    t = run.trainer
    print(f"step {t.step}, epoch {t.epoch}: " + ", ".join(f"{k}={last[k]:.3f}" for k in
                                                         ("G_GAN", "G_cycle", "G_identity", "D") if k in last))
    print(f"trained for {t_train:.0f}s (total {time.time() - t0:.0f}s). Results: {out['grid']}; losses: "
          f"{out.get('losses')}; translated test sets: {out['young2old'].parent}; generators: {out['generators']}")
