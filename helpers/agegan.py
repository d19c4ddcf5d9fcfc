r"""An age-modulated encoder-decoder GAN: one face to any of several age groups (notebook 06).

**What it is.** Seed 001 describes a generator made of three parts and a discriminator that
also guesses ages; the closest published model is the Re-Aging GAN (RAGAN; Makhmudkhujaev,
Hong and Park, ICCV 2021, "Re-Aging GAN: Toward Personalized Face Age Transformation").

- an **identity encoder** :math:`E` turns a face :math:`x` into a feature map
  :math:`h = E(x)` that should carry who the person is, not how old;
- an **age modulator** :math:`M` turns the *target* age group :math:`t` (a one-hot row, or a
  soft mix of rows for an age slider), together with a summary of :math:`h`, into a scale
  :math:`\gamma_l` and a shift :math:`\beta_l` for *every* layer :math:`l` of the decoder;
- a **decoder** whose layers are modulated by a *conditional* instance norm,

  .. math::

      \mathrm{CIN}(a_l; t) = (1 + \gamma_l(t)) \odot \frac{a_l - \mu(a_l)}{\sigma(a_l)} + \beta_l(t),

  where :math:`\mu, \sigma` are each channel's mean and spread over the image, and the scale and
  shift are *learnt* from the condition (Dumoulin et al., 2017; the form StyleGAN, Karras et al.
  2019, calls AdaIN, and the class below keeps that name). Huang and Belongie's AdaIN (2017) has
  no learnt weights: it takes the scale and shift from a style image, :math:`\sigma(y)\,
  \mathrm{norm}(x) + \mu(y)`. Rescaling every channel by numbers that depend on the condition is
  also FiLM (Perez et al., 2018, "FiLM: Visual Reasoning with a General Conditioning Layer")
  applied after an instance norm. So :math:`G(x, t) = D_{ec}(E(x); M(E(x), t))`.

One generator serves every pair of groups, the idea of StarGAN (Choi et al., 2018, "StarGAN:
Unified Generative Adversarial Networks for Multi-Domain Image-to-Image Translation"): with
:math:`K` groups it replaces the :math:`K(K-1)` generators that pairwise CycleGANs would need.
Seed 001 trains a second, *restoring* generator for the way back; here one shared generator is
used twice by default (``generators=1``), and ``generators=2`` gives the seed's pair.

**The discriminator** :math:`D` has one trunk of strided convolutions and two heads: a patch
of real/fake scores :math:`D_{adv}(x)` (with ``per_group_D``, one patch map per age group, of
which a face is judged by its group's: StarGAN v2's multi-task discriminator) and :math:`K`
age-group logits :math:`D_{age}(x)`. The
second head is the auxiliary classifier of AC-GAN (Odena, Olah and Shlens, 2017, "Conditional
Image Synthesis with Auxiliary Classifier GANs"). The alternative, a projection
discriminator (Miyato and Koyama, 2018, "cGANs with Projection Discriminator"), folds the label
into the real/fake score; it gives no age *prediction*, which seed 001's discriminator makes
and which the age loss below needs.

**Training.** A batch holds real faces :math:`x` with their source groups :math:`s`; every face
draws a random target group :math:`t \neq s`. With :math:`\tilde x = G(x, t)`:

- discriminator (least squares, Mao et al., 2017, as in notebook 03; age on *real* faces only):

  .. math::

      \mathcal L_D = \underbrace{\tfrac12\big[(D_{adv}(x) - 1)^2 + D_{adv}(\tilde x)^2\big]}_{D\_adv}
                   + \lambda_{age}^D \underbrace{\mathrm{CE}(D_{age}(x), s)}_{D\_age};

- generator:

  .. math::

      \mathcal L_G = \underbrace{(D_{adv}(\tilde x) - 1)^2}_{G\_adv}
                   + \lambda_{age} \underbrace{\mathrm{CE}(D_{age}(\tilde x), t)}_{G\_age}
                   + \lambda_{cyc} \underbrace{\lVert G(\tilde x, s) - x \rVert_1}_{G\_cycle}
                   + \lambda_{id} \underbrace{\lVert G(x, s) - x \rVert_1}_{G\_identity}.

The adversarial term makes :math:`\tilde x` look like a photo; the age term makes the
discriminator's age head read group :math:`t` in it; the cycle term (translate there and back
again, seed 001's "restoration") makes :math:`\tilde x` keep enough of the person to return;
the identity term asks the generator to leave a face alone when it is asked for the age it
already has, so that the *target group is the only thing that changes a face*. The identity
term is pixel L1 rather than a feature similarity: it needs no extra network (a face-recognition
model would, and the encoder's own features are a moving target that it could shrink to zero),
and it is the same loss as CycleGAN's identity term in notebook 03.

Logged terms (weighted, as the optimisers see them): ``D_adv``, ``D_age``, ``G_adv``,
``G_age``, ``G_cycle``, ``G_identity``, their sums ``D`` and ``G``, ``total = D + G`` (seed
001's "cumulative loss" curve), and two accuracies that are not losses: ``acc_real`` (the age
head on real faces) and ``acc_fake`` (the age head reading the *target* group in the fakes).

**On real faces** (``config.AGEGAN_REAL_CPU``; notebook 06, section 6, has the runs) the recipe
changes: one whole discriminator per age group (``separate_D``), batches balanced across the
groups, the age head off, and an auxiliary age classifier :math:`C` taught the real groups before
the GAN starts, by the discriminator's age term (:func:`age_loss_D`), which has no age head to teach there. The generator adds :math:`\lambda_{aux}\,\mathrm{CE}(C(\tilde x), t)` (``G_age_aux``),
and :math:`C` learns every step from the real faces and the fakes, *both labelled with their source
group* (:func:`aux_loss_C`, logged as ``C_age``). Once trained, the generator is used at a
``strength``: ``x + strength * (G(x, t) - x)`` (:func:`translate`), and with ``ema`` the results
come from a moving average of its weights.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from . import config, weights
from .cli import check_strength  # the strength check lives with the command lines' early checks
from .plots import denormalize
from .layers import (MASK_INIT_BIAS, AgeAuxClassifier, ClassificationLoss, LSGANLoss, ResidualBlock, WeightedL1,
                     augmenter, coarse_colour, count_parameters, init_weights, make_scheduler, mask_head,
                     mask_penalty)
from .metrics import PUBLISHED_SEED001, accuracy, train_group_classifier
from .cache import BatchLoader
from .runs import Run, default_run_dir, face_loader, labelled_cache, load_split, show_indices
from .splits import group_names, group_ranges
from .toyfaces import MAX_AGE, render_face
from .training import Precision, Trainable, load_trained, pick_device, seed_everything

#: The age terms are a weighted cross-entropy, the cycle and identity terms a weighted L1 (:mod:`helpers.layers`).
AgeClassificationLoss, L1Loss = ClassificationLoss, WeightedL1

__all__ = [
    "adain", "age_loss_D", "age_loss_G", "cycle_loss", "aux_loss_C", "check_strength", "apply_strength", "AdaIN", "AgeModulator", "Encoder", "Decoder", "AgeGenerator", "AgeDiscriminator", "AgeGAN",
    "AgeClassificationLoss", "L1Loss", "random_targets", "as_condition", "translate", "age_grid",
    "show_age_grid", "load_generator", "LOSS_GROUPS", "SEED001_RESULTS", "group_mid_ages",
    "toy_ground_truth", "count_parameters", "group_labels", "show_indices", "AgeGANRun", "setup_agegan",
    "evaluate_toy", "default_settings",
]

# --------------------------------------------------------------------------- conditions


def as_condition(target, n_groups: int, batch: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """A target age group as rows ``(batch, n_groups)`` that sum to 1.

    ``target`` is one group index for the whole batch (``3``), one index per face (a ``(B,)``
    integer tensor), or rows of weights ``(B, n_groups)`` (a soft mix of groups: ``[0, .5, .5,
    0, 0, 0]`` asks for half-way between groups 1 and 2, as an age slider does).
    """
    t = torch.as_tensor(target, device=device)
    if t.dim() == 0:
        t = t.expand(batch)
    if t.dim() == 2 and t.is_floating_point():
        if t.shape[1] != n_groups:
            raise ValueError(f"soft targets have {t.shape[1]} columns, the model has {n_groups} age groups")
        return t.to(dtype)
    if t.dim() != 1 or t.is_floating_point():
        raise ValueError("a target is a group index, one index per face, or rows of group weights")
    if len(t) and (int(t.min()) < 0 or int(t.max()) >= n_groups):
        raise ValueError(f"target groups must be 0..{n_groups - 1}, got {t.tolist()}")
    return F.one_hot(t.long(), n_groups).to(dtype)


def random_targets(source: torch.Tensor, n_groups: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """For every source group a random *other* group, each of the ``n_groups - 1`` equally likely.

    Adding 1..K-1 to the source, modulo K, never gives the source back.
    """
    shift = torch.randint(1, n_groups, source.shape, generator=generator, device="cpu").to(source.device)
    return (source + shift) % n_groups


# --------------------------------------------------------------------------- networks


def adain(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``(1 + gamma) * instance_norm(x) + beta``: ``x`` ``(B, C, H, W)``, ``gamma`` and ``beta`` ``(B, C)``.

    Each face's channels are normalised over the image (mean 0, biased variance 1, eps 1e-5), then
    scaled and shifted by that face's numbers.
    """
    return F.instance_norm(x) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class AdaIN(nn.Module):
    """Instance norm without its own scale and shift, followed by ``(1 + gamma) * x + beta`` from outside.

    ``forward(x, gamma, beta)`` with ``gamma, beta`` of shape ``(B, C)``: one scale and shift per
    face and channel, made by the :class:`AgeModulator` from the target age group. ``modulate``
    computes it (:func:`adain`; :meth:`AgeGAN.use` gives every layer the student's own).
    """

    modulate = staticmethod(adain)

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.modulate(x, gamma, beta)


class AgeModulator(nn.Module):
    """Target age group (+ a summary of the identity code) -> one ``(gamma, beta)`` pair per decoder layer.

    The group's row (one-hot or soft) is embedded by a linear map, joined with the identity
    code averaged over the image (so the change can depend on the person, as RAGAN's modulator
    does), passed through a two-layer MLP, and read out by one linear head per decoder layer.
    """

    def __init__(self, n_groups: int, code_channels: int, layer_channels: list[int], hidden: int = 128):
        super().__init__()
        self.n_groups = n_groups
        self.embed = nn.Linear(n_groups, hidden, bias=False)  # a soft row mixes the groups' embeddings
        self.mlp = nn.Sequential(
            nn.Linear(hidden + code_channels, hidden), nn.ReLU(True),
            nn.Linear(hidden, hidden), nn.ReLU(True),
        )
        self.heads = nn.ModuleList(nn.Linear(hidden, 2 * c) for c in layer_channels)

    def forward(self, code: torch.Tensor, condition: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        summary = code.float().mean(dim=(2, 3))
        h = self.mlp(torch.cat([self.embed(condition.float()), summary], dim=1))
        return [tuple(head(h).chunk(2, dim=1)) for head in self.heads]


class Encoder(nn.Module):
    """The identity encoder: ``(B, 3, S, S)`` -> ``(B, 4 ngf, S/4, S/4)``.

    c7s1-ngf, d(2 ngf), d(4 ngf), then ``n_blocks`` residual blocks, each convolution followed by
    instance norm and ReLU: the first half of notebook 03's ResNet generator.
    """

    def __init__(self, ngf: int = 32, n_blocks: int = 2):
        super().__init__()

        def block(c_in, c_out, k, stride):
            return [nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False, padding_mode="reflect"),
                    nn.InstanceNorm2d(c_out), nn.ReLU(True)]

        layers = block(3, ngf, 7, 1) + block(ngf, 2 * ngf, 3, 2) + block(2 * ngf, 4 * ngf, 3, 2)
        layers += [ResidualBlock(4 * ngf) for _ in range(n_blocks)]
        self.net = nn.Sequential(*layers)
        self.out_channels = 4 * ngf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def modulated_res_block(block: nn.Module, h: torch.Tensor, mod1: tuple, mod2: tuple) -> torch.Tensor:
    """The forward pass of a :class:`_ModulatedResBlock`: ``h + AdaIN2(conv2(ReLU(AdaIN1(conv1(h)))))``.

    ``mod1`` and ``mod2`` are the ``(gamma, beta)`` pairs of the block's first and second AdaIN. Nothing
    follows the sum: the block adds a change to ``h`` and leaves the rest as it is.
    """
    y = F.relu(block.norm1(block.conv1(h), *mod1))
    return h + block.norm2(block.conv2(y), *mod2)


class _ModulatedResBlock(nn.Module):
    """``h + conv-AdaIN-ReLU-conv-AdaIN(h)``: a residual block whose two norms take the age's scale and shift.

    ``wiring(block, h, mod1, mod2)`` is its forward pass (:func:`modulated_res_block`; :meth:`AgeGAN.use`
    gives every block the student's own, notebook 06's exercise).
    """

    wiring = staticmethod(modulated_res_block)

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False, padding_mode="reflect")
        self.norm1 = AdaIN(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False, padding_mode="reflect")
        self.norm2 = AdaIN(channels)

    def forward(self, h, mod1, mod2):
        return self.wiring(self, h, mod1, mod2)


class _ModulatedUp(nn.Module):
    """Twice the size, then AdaIN and ReLU. Two ways to double the size:

    - ``"transposed"``: a 3x3 stride-2 transposed convolution, as in notebook 03's generator. It
      costs a quarter of the other way, but its kernel overlaps unevenly on the output grid and
      leaves a faint checkerboard (Odena, Dumoulin and Olah, 2016, "Deconvolution and
      Checkerboard Artifacts");
    - ``"nearest"``: nearest-neighbour upsampling, then a 3x3 convolution at the larger size.
      Every output pixel sees the same number of weights, so there is no checkerboard.
    """

    def __init__(self, c_in: int, c_out: int, upsample: str = "transposed"):
        super().__init__()
        if upsample == "transposed":
            self.conv = nn.ConvTranspose2d(c_in, c_out, 3, 2, padding=1, output_padding=1, bias=False)
        elif upsample == "nearest":
            self.conv = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                      nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False, padding_mode="reflect"))
        else:
            raise ValueError(f"upsample must be 'transposed' or 'nearest', not {upsample!r}")
        self.norm = AdaIN(c_out)

    def forward(self, h, mod):
        return F.relu(self.norm(self.conv(h), *mod))


class Decoder(nn.Module):
    """Identity code + age modulation -> image: ``n_blocks`` modulated residual blocks, two modulated upsamplings, 7x7 to RGB, tanh.

    ``layer_channels`` lists the channels of its AdaIN layers in order (two per block, one per
    upsampling): the modulator makes one ``(gamma, beta)`` pair for each.
    """

    def __init__(self, ngf: int = 32, n_blocks: int = 2, upsample: str = "transposed"):
        super().__init__()
        c = 4 * ngf
        self.blocks = nn.ModuleList(_ModulatedResBlock(c) for _ in range(n_blocks))
        self.ups = nn.ModuleList([_ModulatedUp(c, 2 * ngf, upsample), _ModulatedUp(2 * ngf, ngf, upsample)])
        self.to_rgb = nn.Sequential(nn.Conv2d(ngf, 3, 7, 1, 3, padding_mode="reflect"), nn.Tanh())
        self.layer_channels = [c] * (2 * n_blocks) + [2 * ngf, ngf]

    def forward(self, code: torch.Tensor, mods: list) -> torch.Tensor:
        return self.to_rgb(self.features(code, mods))

    def features(self, code: torch.Tensor, mods: list) -> torch.Tensor:
        """The ``ngf``-channel map before the last convolution (the colour and the mask are read from it)."""
        if len(mods) != len(self.layer_channels):
            raise ValueError(f"the decoder has {len(self.layer_channels)} modulated layers, got {len(mods)} modulations")
        h, i = code, 0
        for block in self.blocks:
            h = block(h, mods[i], mods[i + 1])
            i += 2
        for up in self.ups:
            h = up(h, mods[i])
            i += 1
        return h


class AgeGenerator(nn.Module):
    """``G(x, t) = Decoder(E(x), M(E(x), t))``: faces ``(B, 3, S, S)`` in [-1, 1] and target groups -> faces of that age.

    ``S`` must be a multiple of 4. ``target`` takes anything :func:`as_condition` accepts.
    ``upsample`` picks the decoder's upsampling (:class:`_ModulatedUp`). ``residual=True`` makes
    the decoder draw only the *change* to the face, ``clamp(x + 2 tanh(...))`` (Shen and Liu,
    2017, as in notebook 03's CPU setting): the generator starts as the identity, keeps every
    detail it has no reason to touch, and spends its capacity on the age.

    ``mask=True`` adds GANimation's attention (Pumarola et al., 2018; notebook 03's real-face
    setting has the same): a second head reads a soft mask ``m`` in [0, 1] off the decoder's last
    features, and the output is ``m * colour + (1 - m) * x``. Where the mask is closed the output
    *is* the input, pixel for pixel, so the person stays and the age change goes where it shows.
    ``forward(x, t, return_mask=True)`` also returns ``m``.

    ``colour_res`` (0: off) keeps the change's *colour* coarse: the change ``G(x, t) - x`` is split
    into its grey part (the same amount on R, G and B: lighter, darker, lines) and the rest (its
    colour), and the colour is averaged to ``colour_res x colour_res`` cells and enlarged smoothly.
    Greying hair, paler or ruddier skin are broad and survive it; a purple patch under an eye or a
    blue smear along the jaw cannot be drawn at all.

    ``strength`` (not a weight; 1 unless the run's settings say otherwise) is how much of the change
    ``G(x, t) - x`` :func:`translate` puts on a face when the generator is *used*; training always
    sees the whole change.
    """

    def __init__(self, n_groups: int, ngf: int = 32, n_enc_blocks: int = 2, n_dec_blocks: int = 2, style_dim: int = 128,
                 upsample: str = "transposed", residual: bool = False, mask: bool = False, colour_res: int = 0):
        super().__init__()
        self.n_groups, self.residual, self.colour_res = n_groups, residual, int(colour_res)
        self.strength = 1.0  # the share of the change :func:`translate` puts on a face (a plain attribute, not a weight)
        self.encoder = Encoder(ngf, n_enc_blocks)
        self.decoder = Decoder(ngf, n_dec_blocks, upsample)
        self.modulator = AgeModulator(n_groups, self.encoder.out_channels, self.decoder.layer_channels, style_dim)
        self.mask_head = mask_head(ngf) if mask else None

    def forward(self, x: torch.Tensor, target, return_mask: bool = False):
        code = self.encoder(x)
        cond = as_condition(target, self.n_groups, x.shape[0], device=x.device)
        mods = [(g.to(code.dtype), b.to(code.dtype)) for g, b in self.modulator(code, cond)]
        h = self.decoder.features(code, mods)
        y = self.decoder.to_rgb(h)
        y = (x + 2 * y).clamp(-1, 1) if self.residual else y
        m = None
        if self.mask_head is not None:
            m = torch.sigmoid(self.mask_head(h).float()).to(x.dtype)
            y = m * y + (1 - m) * x
        if self.colour_res:
            y = (x + coarse_colour(y - x, self.colour_res)).clamp(-1, 1)
        return (y, m) if return_mask else y

    def start_as_identity(self) -> "AgeGenerator":
        """A residual generator's last convolution starts at zero, so that ``G(x, t) = x`` before training;
        a mask starts almost closed (``sigmoid(MASK_INIT_BIAS)``, under 5% of every pixel).

        With both, the mask has no gradient at first (the colour equals the input), but the colour
        has, through the 5% the mask lets by; once the colour differs, the mask learns where to open.
        A heavy mask penalty shuts it before that (``lambda_mask`` of 0.01 or more kills the change).
        """
        if self.residual:
            nn.init.zeros_(self.decoder.to_rgb[0].weight)
            nn.init.zeros_(self.decoder.to_rgb[0].bias)
        if self.mask_head is not None:
            nn.init.zeros_(self.mask_head[-1].weight)
            nn.init.constant_(self.mask_head[-1].bias, MASK_INIT_BIAS)
        return self


class AgeDiscriminator(nn.Module):
    """Faces ``(B, 3, S, S)`` -> ``(patch scores (B, A, S/2^n, S/2^n), age-group logits (B, K))``.

    ``n_layers`` stride-2 4x4 convolutions with LeakyReLU(0.2) and no normalisation (a norm
    would mix the faces of a batch or wash out the per-face statistics that tell ages apart;
    StarGAN's discriminator has none either), ``ndf`` channels doubling up to ``8 ndf``. A 3x3
    convolution reads real/fake scores off the last map; the average of that map over space,
    through a linear layer, gives the age-group logits (the AC-GAN head).

    ``per_group=True`` gives the real/fake head one map per age group (``A = K``), the
    multi-task discriminator of StarGAN v2 (Choi et al., 2020): a face is judged by the map of
    the group it claims to be in (a real face by its own group's, a fake by its target's), so a
    fake "75+" face must look like a real 75+ face, not merely like some real face. ``False``
    gives one shared map (``A = 1``). :meth:`realness` picks the map.
    """

    def __init__(self, n_groups: int, ndf: int = 32, n_layers: int = 4, per_group: bool = False):
        super().__init__()
        layers, c_in = [], 3
        for n in range(n_layers):
            c_out = ndf * min(2**n, 8)
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        self.per_group = per_group
        self.adv_head = nn.Conv2d(c_in, n_groups if per_group else 1, 3, 1, 1)
        self.age_head = nn.Linear(c_in, n_groups)

    def forward(self, x: torch.Tensor, groups: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)  # (``groups`` is for GroupDiscriminators; one network reads every face alike)
        return self.adv_head(h), self.age_head(h.mean(dim=(2, 3)))

    def realness(self, adv: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """The real/fake patch map ``(B, 1, h, w)`` of each face's group (the only map when not ``per_group``)."""
        if not self.per_group:
            return adv
        return adv.gather(1, groups.long().view(-1, 1, 1, 1).expand(-1, 1, *adv.shape[2:]))


class GroupDiscriminators(nn.Module):
    """One whole discriminator per age group, each judging only the faces that claim its group.

    CycleGAN's two discriminators each see one domain only: real old faces and fakes meant to
    be old. This gives the age-modulated GAN the same, for any number of groups: face ``i`` goes
    through discriminator ``groups[i]`` alone (a real face through its own group's, a fake
    through its target's), so a training step costs what one discriminator costs. Unlike the
    per-group maps of :class:`AgeDiscriminator`, the groups share no features, and the
    discriminator of 75+ can learn what only 75+ faces look like. Returns the same
    ``(patch scores (B, 1, h, w), age logits (B, K))`` pair; the age logits are each network's own
    head, which sees one group only, so the age terms are meant to be off (``lambda_age_D = 0``).
    """

    def __init__(self, n_groups: int, ndf: int = 32, n_layers: int = 4):
        super().__init__()
        self.nets = nn.ModuleList(AgeDiscriminator(n_groups, ndf, n_layers) for _ in range(n_groups))
        self.per_group = False

    def forward(self, x: torch.Tensor, groups: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if groups is None:
            raise ValueError("GroupDiscriminators needs the group each face claims to be in")
        groups = groups.to(x.device).long()
        adv, age = None, None
        for k in torch.unique(groups).tolist():
            sel = torch.nonzero(groups == k).squeeze(1)
            a, g = self.nets[k](x.index_select(0, sel))
            if adv is None:
                adv = a.new_zeros((len(x), *a.shape[1:]))
                age = g.new_zeros((len(x), g.shape[1]))
            adv = adv.index_copy(0, sel, a)
            age = age.index_copy(0, sel, g)
        return adv, age

    def realness(self, adv: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        return adv


# --------------------------------------------------------------------------- losses


def age_loss_D(real_logits: torch.Tensor, source: torch.Tensor, fake_logits: torch.Tensor,
               target: torch.Tensor) -> torch.Tensor:
    """The discriminator's age term: cross-entropy of the age head on *real* faces against their own groups.

    ``fake_logits`` (the head on the fakes, with their targets) are there to be left alone: an age
    head taught on fakes that fail would learn that their look is the target age.
    """
    return F.cross_entropy(real_logits.float(), source)


def age_loss_G(fake_logits: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The generator's age term: cross-entropy of the age head on the fakes against their *target* groups."""
    return F.cross_entropy(fake_logits.float(), target)


def aux_loss_C(real_logits: torch.Tensor, source: torch.Tensor, fake_logits: torch.Tensor,
               target: torch.Tensor) -> torch.Tensor:
    """The auxiliary age classifier's own loss (the real-face setting): real faces *and* the fakes as their source groups.

    Cross-entropy over all ``2B`` faces, averaged: the real faces labelled with their groups, and
    the (detached) fakes labelled with the group they *came from*, not the target they were meant
    for. A change the generator paints that is not the real look of the target age then reads as
    the source age, so a pattern stops paying as soon as it appears. ``target`` is there to be left
    alone: labelled with it, the classifier would learn the generator's patterns as the age.
    """
    logits = torch.cat([real_logits, fake_logits]).float()
    return F.cross_entropy(logits, torch.cat([source, source]))


def cycle_loss(G_back: nn.Module, real: torch.Tensor, source: torch.Tensor, fake: torch.Tensor,
               target: torch.Tensor) -> torch.Tensor:
    """The cycle term: ``fake = G(real, target)`` sent back to the *source* group must give ``real``, in mean L1.

    The gradient flows through both trips, so ``fake`` is not detached.
    """
    return F.l1_loss(G_back(fake, source).float(), real.float())


# The reference functions under other names, for the model's defaults (its arguments shadow these names).
_age_loss_D, _age_loss_G, _cycle_loss, _aux_loss_C = age_loss_D, age_loss_G, cycle_loss, aux_loss_C


# --------------------------------------------------------------------------- the model

#: Panels for :func:`helpers.plots.plot_losses`: seed 001's cumulative curve, then each player's terms.
LOSS_GROUPS = {
    "cumulative loss (seed 001)": ["total"],
    "discriminator": ["D_adv", "D_age"],
    "generator": ["G_adv", "G_age", "G_cycle", "G_identity"],
    "age head accuracy": ["acc_real", "acc_fake"],
}


class AgeGAN(Trainable):
    """The age-modulated generator (one, or seed 001's two), the two-headed discriminator, optimisers and the training step.

    ``train_step((images, groups))`` takes real faces in [-1, 1] and their age-group indices
    (a :class:`helpers.cache.BatchLoader` with ``labels=``) and returns the named terms of the
    module docstring. ``translate(x, target_group)`` ages or rejuvenates faces.

    ``adain``, ``age_loss_D``, ``age_loss_G`` and ``cycle_loss`` (default: this module's
    functions of those names; the step weighs the losses by the settings' lambdas) can be
    replaced, here or later with :meth:`use`: notebook 06 trains with the student's own. They hold
    no weights, so checkpoints do not depend on them.
    """

    name = "agegan"

    def __init__(self, settings=None, *, device="cpu", precision: Precision | None = None, adain=None,
                 age_loss_D=None, age_loss_G=None, cycle_loss=None, aux_loss_C=None, **changes):
        s = replace(settings or config.AGEGAN_CPU, **changes)  # e.g. AgeGAN(ngf=8) for a quick experiment
        n_groups, n_layers_D, generators, ngf, seed = len(s.group_edges), s.n_layers_D, s.generators, s.ngf, s.seed
        if s.image_size % 4 or s.image_size < 2**n_layers_D:
            raise ValueError(f"image_size {s.image_size} must be a multiple of 4 and at least 2**n_layers_D = {2**n_layers_D}")
        if generators not in (1, 2):
            raise ValueError(f"generators must be 1 (one shared generator) or 2 (seed 001's forward + restoring), not {generators}")
        if n_groups < 2:
            raise ValueError("at least two age groups are needed")
        if s.separate_D and (s.lambda_age_D or s.lambda_age):
            raise ValueError("separate_D=True gives each age group its own discriminator, whose age head sees that "
                             "group only: set lambda_age_D=0 and lambda_age=0 (the age comes from lambda_age_aux)")
        self.settings = s
        self.device = torch.device(device)
        self.precision = precision or Precision(self.device)
        self.n_groups = n_groups
        self.config = {**config.model_config(s), "n_groups": n_groups}
        torch.manual_seed(seed)  # the same seed gives the same starting weights

        def build(net):  # weights already initialised
            return self.precision.prepare(net.to(self.device))

        gen = dict(n_groups=n_groups, ngf=ngf, n_enc_blocks=s.n_enc_blocks, n_dec_blocks=s.n_dec_blocks,
                   style_dim=s.style_dim, upsample=s.upsample, residual=s.residual, mask=s.mask,
                   colour_res=s.colour_res)
        self.G = build(init_weights(AgeGenerator(**gen)).start_as_identity())
        self.G.strength = check_strength(s.strength)  # used by translate() and the grids, never by the training step
        self.networks = {"G": self.G}
        # The generator that takes the fakes back to their source age: the same one, or a second (seed 001).
        self.G_back = self.G
        if generators == 2:
            self.G_back = self.networks["G_back"] = build(init_weights(AgeGenerator(**gen)).start_as_identity())
        if not 0.0 <= s.ema < 1.0:
            raise ValueError(f"ema is a decay per step in [0, 1) (0: off; 0.999 averages about the last thousand "
                             f"steps, fewer early in a run), not {s.ema!r}")
        D = (GroupDiscriminators(n_groups, s.ndf, n_layers_D) if s.separate_D
             else AgeDiscriminator(n_groups, s.ndf, n_layers_D, s.per_group_D))
        self.D = self.networks["D"] = build(init_weights(D))

        g_params = [p for k, net in self.networks.items() if k != "D" for p in net.parameters()]  # G (and G_back)
        self.opt_G = torch.optim.Adam(g_params, lr=s.lr, betas=(s.beta1, 0.999))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=s.lr, betas=(s.beta1, 0.999))
        self.optimizers = {"G": self.opt_G, "D": self.opt_D}
        # The real-face options: the mask's penalty, DiffAugment for D, and an auxiliary age classifier.
        self.mask, self.lambda_mask, self.lambda_mask_tv = s.mask, s.lambda_mask, s.lambda_mask_tv
        self._augment = augmenter(s.diffaug)  # an unknown policy fails here, not at step 1
        self._augment_aux = augmenter(s.age_aux_diffaug or s.diffaug)
        self.C_age, self.lambda_age_aux, self.age_aux_fakes = None, s.lambda_age_aux, s.age_aux_fakes
        if s.lambda_age_aux > 0:
            self.C_age = self.networks["C_age"] = build(AgeAuxClassifier(s.age_aux_ndf, s.age_aux_size, n_groups,
                                                                                   linear=s.age_aux_linear))
            self.optimizers["C_age"] = torch.optim.Adam(self.C_age.parameters(), lr=s.age_aux_lr or s.lr,
                                                        betas=(s.beta1, 0.999))
        self.schedulers = {k: make_scheduler(o, s.lr_policy, s.n_epochs_constant, s.n_epochs_decay)
                           for k, o in self.optimizers.items()}
        # A moving average of the generator's weights (Karras et al., 2018; Yazici et al., 2019): the
        # faces it draws wobble less from step to step than the trained weights' own. No optimiser
        # touches it; it is a network of the checkpoint, and the results and the shipped file use it.
        self.ema, self.ema_updates, self.G_ema, self.G_use = s.ema, 0, None, self.G
        # The auxiliary classifier's lesson before the GAN (age_aux_pretrain): given by teach_aux_first(),
        # taken at the first training step, with the age_loss_D the model holds then (a checkpointed flag).
        self.aux_taught, self._aux_faces = False, None
        if s.ema > 0:
            self.G_ema = self.G_use = self.networks["G_ema"] = copy.deepcopy(self.G).requires_grad_(False)

        self.gan_loss = LSGANLoss()
        self.age_loss_D, self.age_loss_G, self.cycle_loss = _age_loss_D, _age_loss_G, _cycle_loss
        self.aux_loss_C = _aux_loss_C
        self.lambda_age_D, self.lambda_age, self.lambda_cycle = s.lambda_age_D, s.lambda_age, s.lambda_cycle
        self.identity_loss = WeightedL1(s.lambda_identity)
        self.use(adain=adain, age_loss_D=age_loss_D, age_loss_G=age_loss_G, cycle_loss=cycle_loss, aux_loss_C=aux_loss_C)
        # Targets come from their own random generator, so checkpoints can carry its state.
        self.target_rng = torch.Generator().manual_seed(seed + 1)

    def use(self, adain=None, age_loss_D=None, age_loss_G=None, cycle_loss=None, aux_loss_C=None,
            res_block=None) -> "AgeGAN":
        """Train with these functions from now on (None keeps the current one); returns the model.

        ``adain(x, gamma, beta)`` goes into every AdaIN layer of the generator(s), and
        ``res_block(block, h, mod1, mod2)`` becomes the forward pass of every modulated residual block
        (:func:`modulated_res_block`);
        ``age_loss_D(real_logits, source, fake_logits, target)``, ``age_loss_G(fake_logits,
        source, target)`` and ``cycle_loss(G_back, real, source, fake, target)`` are the
        unweighted terms of :func:`age_loss_D`, :func:`age_loss_G` and :func:`cycle_loss`
        (``age_loss_G`` also scores the auxiliary classifier's logits when there is one), and
        ``aux_loss_C(real_logits, source, fake_logits, target)`` is that classifier's own loss
        (:func:`aux_loss_C`; used when ``age_aux_fakes`` is on).
        """
        given = dict(adain=adain, age_loss_D=age_loss_D, age_loss_G=age_loss_G, cycle_loss=cycle_loss,
                     aux_loss_C=aux_loss_C, res_block=res_block)
        for name, fn in given.items():
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a function, not {type(fn).__name__}")
        layers = [m for key, net in self.networks.items() if key != "D" for m in net.modules()]  # the generator(s)
        for m in layers:
            if adain is not None and isinstance(m, AdaIN):
                m.modulate = adain
            if res_block is not None and isinstance(m, _ModulatedResBlock):
                m.wiring = res_block
        for name in ("age_loss_D", "age_loss_G", "cycle_loss", "aux_loss_C"):
            if given[name] is not None:
                setattr(self, name, given[name])
        return self

    def teach_aux_first(self, images, labels, verbose: bool = True) -> None:
        """Have the first training step teach the auxiliary classifier the real groups first (:meth:`pretrain_aux`).

        Waiting for the first step (not teaching it here) means that the loss it learns from is the
        ``age_loss_D`` the model holds when training starts: the student's, once :meth:`use` gave it.
        A run resumed from a checkpoint has its classifier taught already (the flag is checkpointed).
        """
        if self.C_age is not None and self.settings.age_aux_pretrain > 0:
            self._aux_faces = (images, labels, verbose)

    def train_step(self, batch) -> dict:
        real, source = batch  # faces in [-1, 1] and their age groups
        if real.shape[0] < 2:
            raise ValueError("train with batches of two faces or more")
        if not self.aux_taught and self._aux_faces is not None:
            images, labels, verbose = self._aux_faces
            acc = self.pretrain_aux(images, labels)
            if verbose:
                print(f"auxiliary age classifier: {self.settings.age_aux_pretrain:,} steps on the real faces first, "
                      f"with {getattr(self.age_loss_D, '__name__', 'age_loss_D')} as its loss "
                      f"(accuracy {100 * acc:.0f}%, chance {100 / self.n_groups:.0f}%)")
        amp, aug = self.precision, self._augment
        target = random_targets(source, self.n_groups, self.target_rng)

        # 1. Discriminator: real faces -> "real" and their own age group; the fakes -> "fake".
        #    The fakes are detached here, so this update cannot reach the generator.
        with amp.autocast():
            fake, m = self.G(real, target, return_mask=True)
            real_adv, real_age = self.D(aug(real), source)
            fake_adv, fake_age = self.D(aug(fake.detach()), target)
            real_adv, fake_adv = self.D.realness(real_adv, source), self.D.realness(fake_adv, target)
            d_adv = 0.5 * (self.gan_loss(real_adv, True) + self.gan_loss(fake_adv, False))
            d_age = self.lambda_age_D * self.age_loss_D(real_age, source, fake_age, target)
        self.opt_D.zero_grad(set_to_none=True)
        amp.backward(d_adv + d_age)
        amp.step(self.opt_D)
        extra = {}
        if self.C_age is not None:  # the auxiliary classifier: real faces as their groups (and the fakes as theirs)
            with amp.autocast():
                c_in = torch.cat([real, fake.detach()]) if self.age_aux_fakes else real
                c_logits = self.C_age(self._augment_aux(c_in)).float()  # one pass, one augmentation draw
                if self.age_aux_fakes:  # real faces and the fakes, both as their source groups (yours, in notebook 06)
                    c_real, c_fake = c_logits.split(len(real))
                    c_loss = self.aux_loss_C(c_real, source, c_fake, target)
                else:
                    c_loss = F.cross_entropy(c_logits, source)
            self.optimizers["C_age"].zero_grad(set_to_none=True)
            amp.backward(c_loss)
            amp.step(self.optimizers["C_age"])
            extra["C_age"] = c_loss
            self.C_age.requires_grad_(False)

        # 2. Generator: fool the (just updated) discriminator, be read as the target age, come
        #    back to the input when sent to the source age, and stay put when asked for it.
        self.D.requires_grad_(False)  # D only judges here: no gradients for its weights
        with amp.autocast():
            fake_adv, fake_age = self.D(fake, target)
            g_adv = self.gan_loss(self.D.realness(fake_adv, target), True)
            g_age = self.lambda_age * self.age_loss_G(fake_age, source, target)
            g_cycle = self.lambda_cycle * self.cycle_loss(self.G_back, real, source, fake, target)
            g_identity = self.identity_loss(self.G(real, source), real) if self.identity_loss.weight > 0 else 0.0 * g_adv
            loss_G = g_adv + g_age + g_cycle + g_identity
            g_extra = {}
            if m is not None:  # keep the mask small and smooth
                g_extra["G_mask"] = mask_penalty(m, self.lambda_mask, self.lambda_mask_tv)
            if self.C_age is not None:  # the auxiliary classifier should read the target group in the fakes
                aux_logits = self.C_age(self._augment_aux(fake)).float()
                g_extra["G_age_aux"] = self.lambda_age_aux * self.age_loss_G(aux_logits, source, target)  # yours, too
                extra["acc_aux"] = (aux_logits.detach().argmax(1) == target).float().mean()
            loss_G = loss_G + sum(g_extra.values())
        self.opt_G.zero_grad(set_to_none=True)
        amp.backward(loss_G)
        amp.step(self.opt_G)
        self.D.requires_grad_(True)
        if self.C_age is not None:
            self.C_age.requires_grad_(True)
        if self.ema > 0:
            self.update_ema()

        out = {"D_adv": d_adv, "D_age": d_age, "G_adv": g_adv, "G_age": g_age, "G_cycle": g_cycle,
               "G_identity": g_identity, **g_extra, **extra}
        out = {k: v.detach().float() for k, v in out.items()}
        out["D"] = out["D_adv"] + out["D_age"]
        out["G"] = out["G_adv"] + out["G_age"] + out["G_cycle"] + out["G_identity"] + sum(out[k] for k in g_extra)
        out["total"] = out["D"] + out["G"]
        out["acc_real"] = (real_age.detach().argmax(1) == source).float().mean()
        out["acc_fake"] = (fake_age.detach().argmax(1) == target).float().mean()
        return out

    def pretrain_aux(self, images, labels, steps: int | None = None, batch_size: int = 64) -> float | None:
        """Teach the auxiliary age classifier the real faces' groups before the GAN starts; returns its last accuracy.

        Learnt from scratch inside the step, a six-way age classifier still reads chance after
        hundreds of steps, so its gradient tells the generator nothing, and a generator left to
        that finds patterns instead of ages. ``steps`` (default ``settings.age_aux_pretrain``)
        batches of ``batch_size`` faces from ``images`` (uint8 ``(N, 3, S, S)`` or a FaceCache),
        every group equally likely, with its own augmentation. The loss is the model's ``age_loss_D``
        (the discriminator's age term: real faces against their own groups; there are no fakes yet,
        so it gets none), so on real faces, where the per-group discriminators have no age head,
        notebook 06's exercise still teaches a network. Seeded, so a run that restarts from step 0
        gets the same classifier. None when there is no classifier or nothing to do.
        """
        steps = self.settings.age_aux_pretrain if steps is None else int(steps)
        if self.C_age is None or steps <= 0:
            return None
        x_all = images.tensor() if hasattr(images, "tensor") else torch.as_tensor(images)
        y_all = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if len(x_all) != len(y_all) or len(y_all) == 0:
            raise ValueError(f"{len(y_all)} labels for {len(x_all)} faces")
        loader = BatchLoader(x_all, batch_size, labels=y_all, device=self.device, flip=True,
                             seed=self.settings.seed + 2, balance=True)  # every group equally likely
        opt, acc, done = self.optimizers["C_age"], 0.0, 0
        with torch.random.fork_rng(devices=[]):  # the GAN's own random stream is left where it was
            torch.manual_seed(self.settings.seed + 3)
            while done < steps:
                for x, y in loader:
                    with self.precision.autocast():
                        logits = self.C_age(self._augment_aux(x)).float()
                        loss = self.age_loss_D(logits, y, logits[:0], y[:0])  # real faces only: no fakes yet
                    opt.zero_grad(set_to_none=True)
                    self.precision.backward(loss)
                    self.precision.step(opt)
                    self.precision.update()  # one loss-scale update per step: a GradScaler refuses a second step without it
                    acc = 0.9 * acc + 0.1 * float((logits.argmax(1) == y).float().mean())
                    done += 1
                    if done == steps:
                        break
        self.aux_taught = True
        return acc

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the averaged generator towards the trained one: ``w_ema <- d w_ema + (1 - d) w``.

        The decay ``d`` is ``settings.ema``, smaller over the first steps (``(1 + n) / (10 + n)`` after
        ``n`` updates), so the untrained start does not linger in the average.
        """
        self.ema_updates += 1
        n = self.ema_updates
        d = min(self.ema, (1 + n) / (10 + n))
        for avg, w in zip(self.G_ema.parameters(), self.G.parameters()):
            avg.lerp_(w.detach(), 1.0 - d)
        for avg, w in zip(self.G_ema.buffers(), self.G.buffers()):
            avg.copy_(w)

    # ----- checkpointing the target sampler (the Trainer calls these)

    def extra_state(self) -> dict:
        return {"target_rng": self.target_rng.get_state(), "ema_updates": self.ema_updates,
                "aux_taught": self.aux_taught}

    def load_extra_state(self, state: dict) -> None:
        if "target_rng" in state:
            self.target_rng.set_state(state["target_rng"])
        self.ema_updates = int(state.get("ema_updates", 0))
        # Checkpoints from before the flag were all written after the classifier's lesson (then given in setup).
        self.aux_taught = bool(state.get("aux_taught", True))

    # ----- inference

    def translate(self, x, target, batch_size: int = 64) -> torch.Tensor:
        """Faces ``x`` (uint8 or [-1, 1] float, ``(B, 3, H, W)``) at age group ``target``; float32 in [-1, 1] on the CPU."""
        return translate(self.G_use, x, target, batch_size=batch_size, device=self.device, precision=self.precision)

    def age_grid(self, x, batch_size: int = 64) -> torch.Tensor:
        """:func:`age_grid` with this model's generator (its moving average, when it keeps one)."""
        return age_grid(self.G_use, x, batch_size=batch_size, device=self.device, precision=self.precision)


# --------------------------------------------------------------------------- inference


def apply_strength(x: torch.Tensor, out: torch.Tensor, strength: float) -> torch.Tensor:
    """``x + strength * (out - x)`` in [-1, 1]: a share of the change from faces ``x`` to the generator's ``out``."""
    return out if strength == 1.0 else (x + strength * (out - x)).clamp(-1, 1)


@torch.no_grad()
def translate(G: AgeGenerator, x, target, batch_size: int = 64, device=None, precision: Precision | None = None,
              strength: float | None = None) -> torch.Tensor:
    """Faces ``x`` (uint8 or float in [-1, 1], ``(B, 3, H, W)``) sent to age group ``target`` by generator ``G``.

    ``target``: one group for all faces, one per face, or soft rows (see :func:`as_condition`).
    ``strength`` (default ``G.strength``, which a run's settings set; 1 otherwise) scales the
    change: the face returned is ``x + strength * (G(x, t) - x)``, so 1 is the generator's own
    output and less keeps more of the input. Runs in chunks of ``batch_size``; returns float32
    images in [-1, 1] on the CPU.
    """
    strength = check_strength(getattr(G, "strength", 1.0) if strength is None else strength)
    device = torch.device(device) if device is not None else next(G.parameters()).device
    x = torch.as_tensor(x)
    cond = as_condition(target, G.n_groups, len(x))
    fmt = precision.memory_format if precision is not None else torch.contiguous_format
    was_training = G.training
    G.eval()  # instance norms have no running statistics: this changes nothing, it is good form
    outs = []
    try:
        for chunk, c in zip(x.split(batch_size), cond.split(batch_size)):
            chunk = chunk.to(device)
            if chunk.dtype == torch.uint8:
                chunk = chunk.float().div(127.5).sub(1.0)
            chunk = chunk.float().contiguous(memory_format=fmt)
            ctx = precision.autocast() if precision is not None else torch.autocast(device.type, enabled=False)
            with ctx:
                out = G(chunk, c.to(device)).float()
            outs.append(apply_strength(chunk, out, strength).cpu())
    finally:
        G.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


@torch.no_grad()
def age_grid(G: AgeGenerator, x, batch_size: int = 64, device=None, precision: Precision | None = None) -> torch.Tensor:
    """Every face of ``x`` at every age group: ``(N, 1 + K, 3, H, W)``, the input first, then groups 0..K-1."""
    x = torch.as_tensor(x)
    x = x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float()
    cols = [x.cpu()] + [translate(G, x, k, batch_size, device, precision) for k in range(G.n_groups)]
    return torch.stack(cols, dim=1)


def show_age_grid(grid: torch.Tensor, group_names=None, truth: torch.Tensor | None = None, row_labels=None,
                  size: float = 1.3, title: str | None = None):
    """Draw :func:`age_grid`'s output: one row per face, the input then each age group.

    With ``truth`` (``(N, K, 3, H, W)``: the same people drawn at each group's age, as the toy
    faces allow) every face gets a second row with the ground truth under the model's faces.
    Returns the figure.
    """

    n, cols = grid.shape[0], grid.shape[1]
    names = list(group_names) if group_names is not None else [f"group {k}" for k in range(cols - 1)]
    rows = 2 * n if truth is not None else n
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for i in range(n):
        r = 2 * i if truth is not None else i
        for j in range(cols):
            axes[r][j].imshow(denormalize(grid[i, j]).permute(1, 2, 0).numpy())
            if i == 0:
                axes[r][j].set_title("input" if j == 0 else names[j - 1], fontsize=9)
        if row_labels is not None:
            axes[r][0].set_ylabel(str(row_labels[i]), fontsize=8)
        if truth is not None:
            axes[r + 1][0].text(0.5, 0.5, "truth", ha="center", va="center", fontsize=9)
            for j in range(1, cols):
                axes[r + 1][j].imshow(denormalize(truth[i, j - 1]).permute(1, 2, 0).numpy())
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def load_generator(run_dir, device="cpu", which: str = "G") -> AgeGenerator:
    """The trained generator of a run folder, ready for :func:`translate` (notebook 08).

    Reads the newest checkpoint with ``torch.load(weights_only=True)``, rebuilds the generator
    from the configuration stored in it, and loads its weights. The result carries
    ``group_edges`` (lower edges of the age groups, when the run recorded them) and ``config``.
    ``which="G"`` is the moving average of the generator's weights when the run kept one (``ema``).
    """
    state, _ = load_trained(run_dir, AgeGAN.name, "python -m helpers.train agegan")
    nets = state["networks"]
    return generator_from(state["config"], nets["G_ema"] if which == "G" and "G_ema" in nets else nets[which], device)


def generator_from(c: dict, weights: dict, device="cpu") -> AgeGenerator:
    """An :class:`AgeGenerator` rebuilt from a checkpoint's config ``c`` with ``weights``, in eval mode."""
    G = AgeGenerator(c["n_groups"], c["ngf"], c["n_enc_blocks"], c["n_dec_blocks"], c["style_dim"],
                     c.get("upsample", "transposed"), c.get("residual", False), bool(c.get("mask", False)),
                     int(c.get("colour_res", 0) or 0))
    G.load_state_dict(weights)
    G.group_edges = c.get("group_edges")
    G.config = c
    G.strength = check_strength(c.get("strength", 1.0))
    return G.to(device).eval()


# --------------------------------------------------------------------------- checking ages on toy faces

#: Seed 001's results table, with RAGAN's figures as it quotes them (FID: lower is better). The one
#: copy lives in :data:`helpers.metrics.PUBLISHED_SEED001`, where the evaluation keeps it.
SEED001_RESULTS = PUBLISHED_SEED001.drop(columns="note")


def group_mid_ages(group_edges, max_age: int = 90) -> list[float]:
    """A representative age for each group: the middle of its range (the last, open group ends at ``max_age``)."""
    edges = [int(e) for e in group_edges]
    ends = edges[1:] + [max(max_age + 1, edges[-1] + 1)]
    return [(lo + hi - 1) / 2 for lo, hi in zip(edges, ends)]


def toy_ground_truth(table: pd.DataFrame, group_edges, size: int) -> torch.Tensor:
    """The toy people of ``table`` (columns ``identity``, ``variant``) drawn at each group's middle age.

    Returns uint8 ``(N, K, 3, size, size)``: what a perfect model would output, since the toy
    painter can draw the same person, in the same photo, at any age.
    """
    if not {"identity", "variant"} <= set(table.columns):
        raise ValueError("ground truth needs the toy faces' identity and variant columns")
    ages = group_mid_ages(group_edges, MAX_AGE)
    out = np.zeros((len(table), len(ages), size, size, 3), dtype=np.uint8)
    for i, (ident, var) in enumerate(zip(table["identity"], table["variant"])):
        for k, age in enumerate(ages):
            img = render_face(int(ident), age, int(var))
            out[i, k] = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    return torch.from_numpy(out).permute(0, 1, 4, 2, 3).contiguous()


# --------------------------------------------------------------------------- data and setup


def group_labels(ages, group_edges) -> np.ndarray:
    """The age group (0..K-1) of every age; -1 for ages below the first edge."""
    edges = np.asarray([int(e) for e in group_edges])
    return np.searchsorted(edges, np.asarray(ages), side="right") - 1


def default_settings(device="cpu", source: str = "toy", pretrained: bool = False):
    """The settings for a device and a face source.

    Toy faces: :data:`helpers.config.AGEGAN_CPU` (64 px; their age traits are drawn to survive it).
    Real faces: :data:`helpers.config.AGEGAN_REAL` (128 px) on a CUDA GPU,
    :data:`helpers.config.AGEGAN_REAL_CPU` (64 px) anywhere else.

    ``pretrained=True``: the settings of the course's trained weights for these faces (``weights/``,
    :func:`helpers.weights.pretrained_settings`), whatever the device, in a run folder of their own.
    """
    if pretrained:  # the shipped G needs no taught classifier: the few check steps run with an untaught one
        s = weights.pretrained_settings(default_settings("cpu", source), weights.key("agegan", source))
        return replace(s, age_aux_pretrain=0) if s.age_aux_pretrain else s
    if source == "toy":
        return config.AGEGAN_CPU
    return config.AGEGAN_REAL if torch.device(device).type == "cuda" else config.AGEGAN_REAL_CPU


class AgeGANRun(Run):
    """Everything :func:`setup_agegan` builds (see :class:`helpers.runs.Run`).

    Also: ``cache`` and ``labels`` (the training faces and their groups), ``groups`` /
    ``group_names``, ``image_size``, the test side (``test_images``, ``test_groups``,
    ``test_table``) and the faces shown in every grid (``show``, ``show_images``).
    """

    # The real-face options' terms get panels of their own (they are absent, and so are the panels, when off).
    loss_groups = {**LOSS_GROUPS, "real-face parts (generator; the auxiliary classifier's own loss)":
                   ["G_mask", "G_age_aux", "C_age"], "auxiliary classifier reads the target": ["acc_aux"]}

    def describe(self) -> str:
        return (f"{len(self.cache):,} training faces at {self.image_size}px in {len(self.groups)} age groups "
                f"({', '.join(self.group_names)}); " + super().describe())

    def grid(self, n: int | None = None) -> torch.Tensor:
        """The fixed test faces at every age group (:func:`age_grid`)."""
        return self.gan.age_grid(self.show_images[:n])

    def truth(self):
        """The shown toy faces drawn at every group's middle age (None on real faces)."""
        if self.source != "toy":
            return None
        return toy_ground_truth(self.test_table.iloc[self.show], self.settings.group_edges, self.image_size)

    def figures(self) -> dict:
        fig = show_age_grid(self.grid(), self.group_names, truth=self.truth(), title=f"{self.trainer.step} steps")
        return {"age_grid": fig}

    def metrics(self) -> dict:
        return evaluate_toy(self) if self.source == "toy" else {}


def setup_agegan(settings=None, data: str | None = None, data_path=None, device=None, run_dir=None,
                 max_images: int | None = None, resume: bool = True, progress: bool = True,
                 verbose: bool = True) -> AgeGANRun:
    """Data, model, trainer and age-grid snapshots for an AgeGAN run, resumed from ``run_dir`` if it has one.

    ``data``: the face source (default: the course's, ``config.DATA_SOURCE``). The training faces
    are the train side of the course's fixed split with their age groups; the test side is kept
    (``run.test_images``, ``run.test_groups``, ``run.test_table``) for the results, and
    ``settings.n_show`` test faces from every group in turn are drawn at every age into
    ``samples/`` every ``sample_every`` steps. ``settings`` default: :func:`default_settings`
    for the device and the source. The notebook and ``python -m helpers.train agegan`` both call this.
    """
    device = pick_device(device)
    source, train_df, test_df = load_split(data, data_path, max_images, verbose)
    s = settings or default_settings(device, source)
    seed_everything(s.seed)
    precision = Precision(device)
    groups = group_ranges(s.group_edges)
    size = s.image_size

    def labels_of(ages):
        return group_labels(ages, s.group_edges)

    cache, labels = labelled_cache(train_df, size, labels_of, verbose=verbose)
    test_cache, test_groups = labelled_cache(test_df, size, labels_of)
    test_images = test_cache.tensor()
    show = show_indices(test_groups, s.n_show)
    loader = face_loader(cache, s.batch_size, device, precision, seed=s.seed, labels=labels, balance=s.balanced)
    gan = AgeGAN(s, device=device, precision=precision)
    run = AgeGANRun(s, device, source, gan, loader, run_dir or default_run_dir(s.run_name, source),
                    cache=cache, labels=labels, groups=groups, group_names=group_names(groups), image_size=size,
                    test_images=test_images, test_groups=test_groups, test_table=test_cache.table,
                    show=show, show_images=test_images[show])
    run.start(lambda: gan.age_grid(run.show_images).flatten(0, 1), nrow=len(groups) + 1,
              resume=resume, progress=progress)
    gan.teach_aux_first(cache, labels, verbose)  # at the first step, with the age_loss_D the model holds then
    return run


def evaluate_toy(run: AgeGANRun, n_faces: int | None = None, probe_steps: int | None = None, verbose: bool = True) -> dict:
    """Two quick checks that the ages follow the requested group, on toy test faces.

    - ``probe_*``: a small age-group classifier (:func:`helpers.metrics.train_group_classifier`)
      trained on the real *training* faces reads the group of real test faces (``probe_real``,
      its own accuracy) and of the test faces translated to every other group (``probe_fake``:
      how often it reads the requested group). It has never seen the generator's output, unlike
      the discriminator's age head;
    - ``l1_*``: mean absolute pixel error (0..2 scale) against the ground truth, the same toy
      person drawn at the target group's middle age: for the translated faces (``l1_model``)
      and, as a baseline, for the unchanged input (``l1_input``). A model that ages well has
      ``l1_model`` below ``l1_input``.

    Notebook 07 replaces this with the course's age classifier, FID and identity metrics.
    """
    K = len(run.groups)
    n_faces = n_faces or run.settings.eval_faces
    probe_steps = probe_steps or run.settings.probe_steps
    n = min(n_faces, len(run.test_images))
    idx = np.random.default_rng(0).choice(len(run.test_images), n, replace=False)
    x, src = run.test_images[idx], np.asarray(run.test_groups)[idx]
    target = (src + 1 + np.arange(n) % (K - 1)) % K  # every face to one other group, all pairs covered
    fake = run.gan.translate(x, torch.as_tensor(target))
    probe = train_group_classifier(run.cache, run.labels, K, steps=probe_steps, seed=run.settings.seed)
    out = {"faces": n, "probe_real": accuracy(probe, x, src), "probe_fake": accuracy(probe, fake, target)}
    if {"identity", "variant"} <= set(run.test_table.columns):
        truth = toy_ground_truth(run.test_table.iloc[idx], run.settings.group_edges, run.image_size)
        truth_t = truth[torch.arange(n), torch.as_tensor(target)].float().div(127.5).sub(1.0)
        x_f = x.float().div(127.5).sub(1.0)
        out["l1_model"] = (fake - truth_t).abs().mean().item()
        out["l1_input"] = (x_f - truth_t).abs().mean().item()
    if verbose:
        print(", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()))
    return out
