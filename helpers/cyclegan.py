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
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from . import config, splits, weights
from .cache import build_cache, to_float, to_uint8
from .layers import (LR_POLICIES, MASK_INIT_BIAS, AgeAuxClassifier, augmenter, LinearDecay, LSGANLoss, ResidualBlock,
                     WeightedL1, coarse_colour, count_parameters, diff_augment, init_weights, make_scheduler, mask_head,
                     mask_penalty)
from .plots import make_grid
from .runs import Run, default_run_dir, face_loader, load_split
from .toyfaces import render_face
from .training import Checkpointer, Precision, Trainable, pick_device, seed_everything

#: The cycle and identity terms are both a weighted L1 (:class:`helpers.layers.WeightedL1`).
CycleLoss = IdentityLoss = WeightedL1
__all__ = ["LR_POLICIES", "LinearDecay", "LSGANLoss", "ResidualBlock", "count_parameters", "init_weights",
           "make_scheduler", "CycleLoss", "IdentityLoss", "AgeAuxClassifier", "MASK_INIT_BIAS", "diff_augment",
           "mask_penalty"]  # re-exported for the notebook and the real-face recipe; the rest is defined here

# --------------------------------------------------------------------------- networks


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
        self.mask_head = mask_head(ngf) if mask else None

    def forward(self, x: torch.Tensor, return_mask: bool = False):
        return _output(self, x, return_mask)

    def after_init(self) -> None:
        _zero_output(self)


def _output(gen, x, return_mask: bool = False):
    """The generator's image; with a mask head, ``m * colour + (1 - m) * x`` (and ``m`` when asked).

    A generator with ``colour_res`` (set by :func:`make_generator`) keeps the colour of its change coarse
    (:func:`helpers.layers.coarse_colour`): no small patch of colour, only broad tints, and every grey detail.
    """
    cells = gen.__dict__.get("colour_res", 0)
    if gen.mask_head is None:
        y = gen.net(x)
        y = (x + 2 * y).clamp(-1, 1) if gen.residual else y
        if cells:
            y = (x + coarse_colour(y - x, cells)).clamp(-1, 1)
        return (y, None) if return_mask else y
    h = gen.net[:-3](x)  # the features before the 7x7 colour convolution and its tanh
    colour = gen.net[-3:](h)
    if gen.residual:
        colour = (x + 2 * colour).clamp(-1, 1)
    m = torch.sigmoid(gen.mask_head(h).float()).to(x.dtype)
    log = gen.__dict__.get("mask_log")
    if log is not None:  # noted for the mask penalty around a student's generator_losses
        log.append((x, m))
    y = m * colour + (1 - m) * x
    if cells:
        y = (x + coarse_colour(y - x, cells)).clamp(-1, 1)
    return (y, m) if return_mask else y


def _zero_output(gen) -> None:
    """A residual generator starts as the identity: its last convolution (before the tanh) starts at zero.

    A mask head starts almost closed (``sigmoid(MASK_INIT_BIAS)``): nearly the identity too.
    """
    if gen.residual:
        nn.init.zeros_(gen.net[-2].weight)
    if getattr(gen, "mask_head", None) is not None:
        nn.init.zeros_(gen.mask_head[-1].weight)
        nn.init.constant_(gen.mask_head[-1].bias, MASK_INIT_BIAS)


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
        self.mask_head = mask_head(max(1, ngf // 2)) if mask else None

    def forward(self, x: torch.Tensor, return_mask: bool = False):
        return _output(self, x, return_mask)

    def after_init(self) -> None:
        _zero_output(self)


#: Generator designs by name: ``"resnet"`` (Zhu et al., the default) or ``"seed003"``.
GENERATORS = {"resnet": ResnetGenerator, "seed003": Seed003Generator}


def make_generator(style: str = "resnet", ngf: int = 64, n_blocks: int = 9, residual: bool = False,
                   mask: bool = False, upsample: str = "transposed", colour_res: int = 0) -> nn.Module:
    """A generator by design name (see :data:`GENERATORS`); ``mask=True`` adds GANimation's attention mask,
    ``upsample="nearest"`` replaces the transposed convolutions by nearest-neighbour doubling and a convolution,
    ``colour_res`` > 0 keeps the colour of the change at that many cells a side (:func:`_output`)."""
    try:
        gen = GENERATORS[style](ngf=ngf, n_blocks=n_blocks, residual=residual, mask=mask, upsample=upsample)
    except KeyError:
        raise ValueError(f"no generator design {style!r}; choose one of {sorted(GENERATORS)}") from None
    gen.colour_res = int(colour_res)
    return gen


def patch_discriminator(ndf: int = 64, n_layers: int = 3) -> nn.Sequential:
    """The layers of a PatchGAN discriminator (see :class:`PatchDiscriminator`), as one ``nn.Sequential``.

    Notebook 03's exercise writes the same function; :class:`PatchDiscriminator` lays either one's layers out.
    """
    layers = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    ch = ndf
    for n in range(1, n_layers + 1):
        out = ndf * min(2**n, 8)
        stride = 2 if n < n_layers else 1
        layers += [nn.Conv2d(ch, out, 4, stride, 1, bias=False), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
        ch = out
    layers += [nn.Conv2d(ch, 1, 4, 1, 1)]
    return nn.Sequential(*layers)


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al., 2017): ``(B, 3, S, S)`` -> ``(B, 1, S', S')``, one score per image patch.

    ``n_layers`` stride-2 4x4 convolutions (64, 128, 256 filters for ``ndf=64``), then two
    stride-1 4x4 convolutions (512 filters, then 1). LeakyReLU(0.2) everywhere and instance norm
    on all but the first layer. With ``n_layers=3`` each output sees a 70x70 patch of the input
    (:func:`receptive_field`); at 128 px the output is 14x14 scores, at 64 px 6x6. The scores are
    raw (no sigmoid): the LSGAN loss regresses them to 1 or 0.

    ``layers(ndf, n_layers)`` builds the layers (default :func:`patch_discriminator`; notebook 03's
    exercise gives the student's). They are laid into ``net`` one by one, so the weights' names, and
    the checkpoints, are the same whoever wrote them.
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3, layers=None):
        super().__init__()
        if layers is not None:
            self.patch_layers = layers  # the student's, recorded (a run's code fingerprint reads it)
        made = (layers or patch_discriminator)(ndf, n_layers)
        self.net = nn.Sequential(*[m for m in made.modules() if not list(m.children())])

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


# --------------------------------------------------------------------------- the model

def generator_losses(model: "CycleGAN", real_a: torch.Tensor, real_b: torch.Tensor):
    """The generators' terms of one step (the table of the module docstring): ``(losses, fake_a, fake_b)``.

    ``losses`` maps each term's name to its weighted value (the optimiser minimises their sum);
    ``fake_a`` / ``fake_b`` are the translated batches, for the discriminators' turn. Called by
    :meth:`CycleGAN.train_step` inside mixed precision, with the discriminators frozen.
    """
    aug = model._augment
    if model.mask:  # the masks come out too, for their penalty
        fake_b, m_ab = model.G_AB(real_a, return_mask=True)  # young -> old
        rec_a, m_aba = model.G_BA(fake_b, return_mask=True)  # ... -> young again: should give back real_a
        fake_a, m_ba = model.G_BA(real_b, return_mask=True)  # old -> young
        rec_b, m_bab = model.G_AB(fake_a, return_mask=True)  # ... -> old again: should give back real_b
    else:
        fake_b = model.G_AB(real_a)  # young -> old
        rec_a = model.G_BA(fake_b)   # ... -> young again: should give back real_a
        fake_a = model.G_BA(real_b)  # old -> young
        rec_b = model.G_AB(fake_a)   # ... -> old again: should give back real_b
    losses = {
        "G_GAN_A2B": model.gan_loss(model.D_B(aug(fake_b)), True),  # fool the old-face judge
        "G_GAN_B2A": model.gan_loss(model.D_A(aug(fake_a)), True),  # fool the young-face judge
        "G_cycle_A": model.cycle_loss(rec_a, real_a),
        "G_cycle_B": model.cycle_loss(rec_b, real_b),
    }
    if model.mask:
        losses["G_mask"] = sum(mask_penalty(m, model.lambda_mask, model.lambda_mask_tv)
                               for m in (m_ab, m_aba, m_ba, m_bab))
    if model.C_age is not None:
        losses.update(age_terms(model, fake_a, fake_b))
    if model.identity_weight > 0:  # an old face given to G_AB should stay as it is
        losses["G_identity_A"] = model.identity_loss(model.G_BA(real_a), real_a)
        losses["G_identity_B"] = model.identity_loss(model.G_AB(real_b), real_b)
    return losses, fake_a, fake_b


def age_terms(model: "CycleGAN", fake_a: torch.Tensor, fake_b: torch.Tensor) -> dict:
    """The auxiliary age classifier's terms for the generators: the aged fakes should read old (1), the rejuvenated young (0)."""
    aug = model._augment
    logit_b, logit_a = model.C_age(aug(fake_b)).float(), model.C_age(aug(fake_a)).float()
    return {"G_age_A2B": model.lambda_age * F.binary_cross_entropy_with_logits(logit_b, torch.ones_like(logit_b)),
            "G_age_B2A": model.lambda_age * F.binary_cross_entropy_with_logits(logit_a, torch.zeros_like(logit_a))}


class _Augmented:
    """A discriminator seen through DiffAugment: what the generators' terms score when ``diffaug`` is on."""

    def __init__(self, net, augment):
        self.net, self.augment = net, augment

    def __call__(self, x):
        return self.net(self.augment(x))


_DIRECTIONS = {"A2B": "A2B", "B2A": "B2A", "young2old": "A2B", "old2young": "B2A"}


class CycleGAN(Trainable):
    """Two generators (G_AB: young -> old, G_BA: old -> young), two PatchGAN discriminators
    (D_A judges young faces, D_B old ones), their optimisers, schedulers and image pools.

    ``train_step((real_a, real_b))`` takes a batch of young and a batch of old faces in [-1, 1]
    and returns the named loss terms (see the module docstring). ``translate(x, "A2B")`` ages
    faces, ``translate(x, "B2A")`` rejuvenates them.

    ``compile=True`` runs the networks through ``torch.compile`` (worth it on a GPU for long
    runs; the first steps are slow while it compiles). ``discriminator(ndf, n_layers)`` builds the
    layers of both discriminators (default :func:`patch_discriminator`; notebook 03's exercise).
    """

    name = "cyclegan"

    def __init__(self, settings=None, *, device="cpu", precision: Precision | None = None, compile: bool = False,
                 discriminator=None, **changes):
        s = replace(settings or config.CYCLEGAN, **changes)  # e.g. CycleGAN(ngf=16) for a quick experiment
        image_size, generator = s.image_size, s.generator
        if image_size % (8 if generator == "seed003" else 4):
            raise ValueError(f"image_size {image_size} must be a multiple of {8 if generator == 'seed003' else 4} "
                             f"for the {generator!r} generator")
        self.settings = s
        self.device = torch.device(device)
        self.precision = precision or Precision(self.device)
        self.config = config.model_config(s)
        ngf, ndf, n_blocks, residual, n_layers_D, seed = s.ngf, s.ndf, s.n_blocks, s.residual, s.n_layers_D, s.seed
        lr, betas, mask = s.lr, (s.beta1, 0.999), s.mask
        self._diffaug = augmenter(s.diffaug)  # refuses an unknown policy name now, not at the first step
        self.mask, self.lambda_mask, self.lambda_mask_tv = bool(mask), float(s.lambda_mask), float(s.lambda_mask_tv)
        self.lambda_age, self.diffaug = float(s.lambda_age), str(s.diffaug)
        self.age_aux_fakes, self.age_aux_batch = bool(s.age_aux_fakes), int(s.age_aux_batch)
        upsample = s.upsample
        # remembered real faces of each domain, for the age classifier's bigger batches (age_aux_batch > 0)
        self.memory_A, self.memory_B = (FaceMemory(seed=seed + 2), FaceMemory(seed=seed + 3)) \
            if self.age_aux_batch > 0 and self.lambda_age > 0 else (None, None)

        def build(net):
            return self.precision.prepare(init_weights(net).to(self.device))

        with torch.random.fork_rng(devices=[]):  # the same seed gives the same starting weights,
            torch.manual_seed(seed)  # without touching the caller's random state
            self.networks = {
                "G_AB": build(make_generator(generator, ngf, n_blocks, residual, mask, upsample, s.colour_res)),
                "G_BA": build(make_generator(generator, ngf, n_blocks, residual, mask, upsample, s.colour_res)),
                "D_A": build(PatchDiscriminator(ndf, n_layers_D, layers=discriminator)),
                "D_B": build(PatchDiscriminator(ndf, n_layers_D, layers=discriminator)),
            }
            if self.lambda_age > 0:  # the auxiliary young/old classifier (its own network, not the judge)
                # PyTorch's default initialisation: N(0, 0.02) would shrink the signal through its unnormalised layers
                self.networks["C_age"] = self.precision.prepare(AgeAuxClassifier(s.age_aux_ndf, s.age_aux_size).to(self.device))
        # The networks the step calls: the same modules, or their compiled versions (which share
        # the parameters). Checkpoints always save the plain modules in self.networks.
        run = {k: torch.compile(v) if compile else v for k, v in self.networks.items()}
        self.G_AB, self.G_BA, self.D_A, self.D_B = run["G_AB"], run["G_BA"], run["D_A"], run["D_B"]
        self.C_age = run.get("C_age")

        nets = self.networks
        self.opt_G = torch.optim.Adam(itertools.chain(nets["G_AB"].parameters(), nets["G_BA"].parameters()),
                                      lr=lr, betas=betas)
        self.opt_D = torch.optim.Adam(itertools.chain(nets["D_A"].parameters(), nets["D_B"].parameters()),
                                      lr=lr, betas=betas)
        self.optimizers = {"G": self.opt_G, "D": self.opt_D}
        if self.C_age is not None:
            self.opt_C = torch.optim.Adam(nets["C_age"].parameters(), lr=s.age_aux_lr or lr, betas=betas)
            self.optimizers["C"] = self.opt_C
        self.schedulers = {k: make_scheduler(opt, s.lr_policy, s.n_epochs_constant, s.n_epochs_decay)
                           for k, opt in self.optimizers.items()}

        self.gan_loss = LSGANLoss()
        self.cycle_loss = WeightedL1(s.lambda_cycle)
        self.identity_loss = WeightedL1(s.lambda_identity * s.lambda_cycle)
        self.pool_A = ImagePool(s.pool_size, seed=seed)      # past fake young faces, for D_A
        self.pool_B = ImagePool(s.pool_size, seed=seed + 1)  # past fake old faces, for D_B
        self.identity_weight = s.lambda_identity * s.lambda_cycle
        # Swappable pieces (notebook 03 trains with the student's own; code, not state, so checkpoints
        # and resume are unaffected): the loss modules above, the generators' terms
        # generator_losses(model, real_a, real_b) -> (losses, fake_a, fake_b), and the pool's query
        # pool_query(pool, images) -> images.
        self.generator_losses = generator_losses
        self.pool_query = ImagePool.__call__

    def train_step(self, batch) -> dict:
        real_a, real_b = batch  # a batch of young faces and a batch of old faces, unpaired
        amp = self.precision

        # 1. Generators. The discriminators only judge here: freezing them saves computing
        #    gradients for their weights, which this update does not change.
        #    The terms come from self.generator_losses (default: generator_losses above).
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        aug = self._augment
        if self.C_age is not None:
            self.C_age.requires_grad_(False)
        with amp.autocast():
            if self.generator_losses is generator_losses:
                losses, fake_a, fake_b = generator_losses(self, real_a, real_b)
            else:
                losses, fake_a, fake_b = self.students_generator_losses(real_a, real_b)
            loss_G = sum(losses.values())
        if "G_identity_A" not in losses:  # switched off: logged as 0, so every run has the same terms
            losses["G_identity_A"] = losses["G_identity_B"] = torch.zeros((), device=loss_G.device)
        self.opt_G.zero_grad(set_to_none=True)
        amp.backward(loss_G)
        amp.step(self.opt_G)

        # 2. Discriminators: real faces -> 1, fakes -> 0, the fakes drawn partly from the history
        #    pools. The fakes are detached: this update must not reach the generators.
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        old_fake_a = self.pool_query(self.pool_A, fake_a).contiguous(memory_format=amp.memory_format)
        old_fake_b = self.pool_query(self.pool_B, fake_b).contiguous(memory_format=amp.memory_format)
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

    def students_generator_losses(self, real_a: torch.Tensor, real_b: torch.Tensor):
        """``self.generator_losses`` given in place of the course's (notebook 03's exercise), with the real-face terms around it.

        The student's function computes the four translations, the adversarial, cycle and identity terms,
        as on the toy faces. The real-face setting's extras come from here, so that the same function
        trains both: while it runs, the discriminators it calls see DiffAugment's shifts (``diffaug``) and
        the generators note each mask they make; afterwards the masks of the four translations (not of the
        identity calls) give ``G_mask``, and the auxiliary classifier's terms are added (:func:`age_terms`).
        The terms are then those of :func:`generator_losses`.
        """
        G_AB, G_BA = self.networks["G_AB"], self.networks["G_BA"]
        D_A, D_B = self.D_A, self.D_B
        if self.mask:
            G_AB.mask_log, G_BA.mask_log = [], []
        if self.diffaug:
            self.D_A, self.D_B = _Augmented(D_A, self._augment), _Augmented(D_B, self._augment)
        try:
            losses, fake_a, fake_b = self.generator_losses(self, real_a, real_b)
        finally:
            self.D_A, self.D_B = D_A, D_B
            logs = G_AB.__dict__.pop("mask_log", None), G_BA.__dict__.pop("mask_log", None)
        losses = dict(losses)
        if self.mask:  # an identity call (G_AB on an old face, G_BA on a young one) is no translation
            masks = [m for x, m in logs[0] if x is not real_b] + [m for x, m in logs[1] if x is not real_a]
            losses["G_mask"] = sum(mask_penalty(m, self.lambda_mask, self.lambda_mask_tv) for m in masks)
        if self.C_age is not None:
            losses.update(age_terms(self, fake_a, fake_b))
        return losses, fake_a, fake_b

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment with the model's policy (``diffaug``) on what the discriminators and the age classifier see."""
        return self._diffaug(x)

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


def generator_from(c: dict, weights: dict | None = None, device="cpu") -> nn.Module:
    """One generator rebuilt from a model config ``c`` (a checkpoint's, or ``model.config``), with ``weights``, in eval mode."""
    s = config.settings_from(config.CYCLEGAN, c)
    G = make_generator(s.generator, s.ngf, s.n_blocks, s.residual, s.mask, s.upsample, s.colour_res)
    if weights is not None:
        G.load_state_dict(weights)
    return G.to(device).eval()


def load_generators(path, device="cpu") -> CycleGAN:
    """A :class:`CycleGAN` with the generators saved by :func:`save_generators`, ready to ``translate``.

    The settings are rebuilt from the config stored beside the weights (older files with extra
    keys load too); the discriminators are left untrained: this is for inference.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = CycleGAN(config.settings_from(config.CYCLEGAN, state["config"]), device=device)
    for k in ("G_AB", "G_BA"):
        model.networks[k].load_state_dict(state[k])
    return model


# --------------------------------------------------------------------------- a whole run (notebook and CLI)


def default_settings(device="cpu", source: str = "toy", pretrained: bool = False):
    """The settings for a device and a face source.

    - toy faces: :data:`helpers.config.CYCLEGAN` on a CUDA GPU, :data:`helpers.config.CYCLEGAN_CPU` elsewhere;
    - real faces: :data:`helpers.config.CYCLEGAN_REAL` on a CUDA GPU, :data:`helpers.config.CYCLEGAN_REAL_CPU`
      elsewhere (the mask, the auxiliary age classifier and DiffAugment that make real faces age).

    ``pretrained=True``: the settings of the course's trained weights for these faces (``weights/``,
    :func:`helpers.weights.pretrained_settings`), whatever the device, in a run folder of their own.
    """
    if pretrained:
        return weights.pretrained_settings(default_settings("cpu", source), weights.key("cyclegan", source))
    gpu = torch.device(device).type == "cuda"
    if source == "toy":
        return config.CYCLEGAN if gpu else config.CYCLEGAN_CPU
    return config.CYCLEGAN_REAL if gpu else config.CYCLEGAN_REAL_CPU


def toy_ground_truth(table, age: float, size: int) -> torch.Tensor:
    """Each toy face of ``table`` redrawn at ``age`` (same person, pose and light): uint8 ``(N, 3, size, size)``."""
    imgs = [np.asarray(render_face(int(r.identity), float(age), int(r.variant)).resize((size, size), Image.BILINEAR))
            for r in table.itertuples()]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


def result_rows(model: CycleGAN, young, old, truth_old=None, truth_young=None) -> tuple[torch.Tensor, list[str]]:
    """The result grid's rows, stacked: young faces, aged, (the truth,) back; old faces, rejuvenated, (the truth,) back.

    ``young`` / ``old``: equal-sized batches (uint8 or [-1, 1]); ``truth_old`` / ``truth_young``:
    the same people drawn at the target age (toy faces only). Returns ``(images, labels)`` with
    one label per row, for :func:`show_results` or ``plots.make_grid(images, nrow=len(young))``.
    """
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


class CycleGANRun(Run):
    """Everything :func:`setup_cyclegan` builds (see :class:`helpers.runs.Run`).

    Also: ``young`` / ``old`` (the age ranges), ``train_a`` / ``train_b`` (uint8 caches of the
    young and old training faces, at ``load_size``) and ``test_a`` / ``test_b`` (test faces, at
    ``image_size``). ``data`` is the :class:`UnpairedBatches` the trainer draws from.
    """

    loss_groups = LOSS_GROUPS

    @property
    def data(self):
        return self.loader

    def describe(self) -> str:
        s = self.settings
        return (f"{self.source}: young {self.young} ({len(self.train_a):,} train / {len(self.test_a):,} test), "
                f"old {self.old} ({len(self.train_b):,} / {len(self.test_b):,}); {s.image_size}px crops of "
                f"{s.load_size}px, {len(self.loader)} batches of {s.batch_size} per epoch, on {self.device} "
                f"({self.model.precision})")

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
            truth_old = toy_ground_truth(self.test_a.table.iloc[:len(a)], old_age, self.settings.image_size)
            truth_young = toy_ground_truth(self.test_b.table.iloc[:len(b)], young_age, self.settings.image_size)
        return result_rows(self.model, a, b, truth_old, truth_young)

    def figures(self) -> dict:
        images, labels = self.results()
        return {"results": show_results(images, labels, title=f"{self.trainer.step} steps")}

    def save_outputs(self) -> dict:
        """:meth:`helpers.runs.Run.save_outputs`, plus both translated test sets and the generators."""
        out = super().save_outputs()
        for direction, cache in (("young2old", self.test_a), ("old2young", self.test_b)):
            out[direction] = self.run_dir / "translated" / direction
            save_translations(self.model, cache.tensor(), out[direction], direction,
                              names=[Path(p).name for p in cache.table["path"]])
        out["generators"] = save_generators(self.model, self.run_dir / "generators.pt")
        return out


def setup_cyclegan(settings=None, data: str | None = None, data_path=None, device=None, run_dir=None,
                   young=None, old=None, max_images: int | None = None, resume: bool = True,
                   progress: bool = True, verbose: bool = True, compile: bool = False,
                   discriminator=None) -> CycleGANRun:
    """Faces, domains, model, trainer and result snapshots for a CycleGAN run, resumed from ``run_dir`` if it has one.

    ``data``: a face source (default ``config.DATA_SOURCE``, "auto": UTKFace when at hand, toy
    faces otherwise). ``young`` / ``old``: age ranges (default: the source's preset, 15-30 and
    50+ for UTKFace and the toy faces). ``settings``: a :class:`helpers.config.CycleGANSettings`
    (default: :func:`default_settings` for the device and source). ``compile=True`` runs the
    networks through ``torch.compile`` (for long GPU runs; the first steps wait for the compiler).
    ``discriminator(ndf, n_layers)``: the layers of both discriminators (default
    :func:`patch_discriminator`; notebook 03 gives the student's).
    """
    device = pick_device(device)
    source, train_df, test_df = load_split(data, data_path, max_images, verbose)
    s = settings or default_settings(device, source)
    seed_everything(s.seed)
    precision = Precision(device)
    preset = splits.PRESETS.get(source, splits.PRESETS["utkface"])
    young, old = splits.check_ranges([young or preset.young, old or preset.old])
    (train_a, train_b), (test_a, test_b) = splits.split_domains(train_df, young, old), splits.split_domains(test_df, young, old)
    caches = [build_cache(df, size, verbose=verbose) for df, size in
              ((train_a, s.load_size), (train_b, s.load_size), (test_a, s.image_size), (test_b, s.image_size))]
    batches = UnpairedBatches(face_loader(caches[0], s.batch_size, device, precision, s.seed, crop=s.image_size),
                              face_loader(caches[1], s.batch_size, device, precision, s.seed + 1, crop=s.image_size),
                              device=device)
    model = CycleGAN(s, device=device, precision=precision, compile=compile, discriminator=discriminator)
    run = CycleGANRun(s, device, source, model, batches, run_dir or default_run_dir(s.run_name, source),
                      young=young, old=old, train_a=caches[0], train_b=caches[1], test_a=caches[2], test_b=caches[3])
    return run.start(lambda: run.results(truth=False)[0], nrow=min(s.n_show, len(caches[2]), len(caches[3])),
                     config={"young": str(young), "old": str(old), "load_size": s.load_size},
                     resume=resume, progress=progress)


def load_run(run_dir, device="cpu") -> tuple[CycleGAN, dict]:
    """``(model, info)``: the trained CycleGAN of a run folder, for inference, and what its checkpoint records.

    Uses ``generators.pt`` when it is at least as new as the newest checkpoint, the checkpoint
    otherwise. ``info``: ``data``, ``young``, ``old``, ``steps`` and ``file`` (what was loaded).
    Raises ``FileNotFoundError`` when the folder has neither, ``ValueError`` when its checkpoint
    is another model's.
    """
    run_dir = Path(run_dir)
    gens = run_dir / "generators.pt"
    state, path = Checkpointer(run_dir).load(map_location="cpu")
    if state is not None and state.get("model") != CycleGAN.name:
        raise ValueError(f"{path} belongs to model {state.get('model')!r}, not 'cyclegan': give a CycleGAN run folder")
    cfg = dict(state.get("config", {})) if state else {}
    info = {"data": cfg.get("data", "toy"), "young": cfg.get("young"), "old": cfg.get("old"),
            "steps": int(state["step"]) if state and "step" in state else None}
    if gens.is_file() and (path is None or gens.stat().st_mtime >= path.stat().st_mtime):
        model, info["file"] = load_generators(gens, device=device), gens.name
    elif state is not None:
        model = CycleGAN(config.settings_from(config.CYCLEGAN, cfg), device=device)
        for k in ("G_AB", "G_BA"):
            model.networks[k].load_state_dict(state["networks"][k])
        info["file"] = path.name
    else:
        raise FileNotFoundError(f"no generators.pt and no checkpoint in {run_dir}: train first "
                                "(python -m helpers.train cyclegan)")
    for net in model.networks.values():
        net.eval()
    return model, info
