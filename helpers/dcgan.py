r"""DCGAN: a deep convolutional generative adversarial network, and its conditional version.

**The GAN game** (Goodfellow et al., 2014, "Generative Adversarial Nets"). A generator
:math:`G` turns noise :math:`z \sim \mathcal N(0, I)` into an image; a discriminator :math:`D`
gives the probability that an image is real. They play the minimax game

.. math::

    \min_G \max_D \; V(D, G) =
        \mathbb E_{x \sim p_\text{data}}[\log D(x)] +
        \mathbb E_{z \sim p_z}[\log (1 - D(G(z)))].

For a fixed :math:`G` the best discriminator is
:math:`D^*(x) = p_\text{data}(x) / (p_\text{data}(x) + p_g(x))`, and with it the game is won
exactly when :math:`p_g = p_\text{data}`, where :math:`D^* = 1/2` everywhere.

In practice both players take turns with gradient steps on binary cross-entropy (BCE) losses:

- discriminator: :math:`\mathcal L_D = -\log D(x) - \log(1 - D(G(z)))`, i.e. BCE with target 1
  on real images and target 0 on fakes;
- generator, **minimax** form: minimise :math:`\log(1 - D(G(z)))`. Early in training, when
  :math:`D` easily rejects the fakes (:math:`D(G(z)) \approx 0`), this curve is flat and its
  gradient vanishes: the generator *saturates*;
- generator, **non-saturating** form (the one Goodfellow et al. recommend and everyone uses):
  minimise :math:`\mathcal L_G = -\log D(G(z))`, i.e. BCE with target 1 on the fakes. It has
  the same fixed point but strong gradients exactly when the generator is losing.

**The DCGAN recipe** (Radford, Metz and Chintala, 2016, "Unsupervised Representation Learning
with Deep Convolutional Generative Adversarial Networks"): no pooling and no fully connected
hidden layers; the generator upsamples with strided transposed convolutions (4x4 kernels,
stride 2), the discriminator downsamples with strided convolutions; batch normalisation in both
except the generator's output layer and the discriminator's input layer; ReLU in the generator
with tanh at the output (images live in [-1, 1]); LeakyReLU(0.2) in the discriminator; all
weights drawn from :math:`\mathcal N(0, 0.02)`; Adam with learning rate 2e-4 and
:math:`\beta_1 = 0.5`. At 64x64 the generator goes 100 -> 4x4x512 -> 8x8x256 -> 16x16x128 ->
32x32x64 -> 64x64x3, and the discriminator mirrors it.

The discriminator here returns a **logit** :math:`\ell` (no sigmoid), and
:math:`D(x) = \sigma(\ell)`: BCE on logits is numerically stable and safe under mixed precision.

**Conditional DCGAN** (Mirza and Osindero, 2014; used for age in seed 004). With
``n_classes > 0`` a one-hot label is concatenated to the noise vector of the generator and, as
constant feature maps, to the output of the discriminator's first convolution, so both players
know which class (age group) an image should belong to.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from . import config, weights
from .cache import build_cache
from .plots import show_grid
from .runs import Run, default_run_dir, face_loader, load_split
from .training import Precision, Trainable, pick_device, seed_everything

# --------------------------------------------------------------------------- networks


def _n_layers(image_size: int) -> int:
    """Number of stride-2 up/downsamplings between 4x4 and ``image_size``."""
    n = math.log2(image_size) if image_size > 0 else 0
    if image_size < 8 or n != int(n):
        raise ValueError(f"image_size must be a power of two, 8 or more (16, 32, 64, 128 ...), not {image_size}")
    return int(n) - 2


def _one_hot(labels: torch.Tensor, n_classes: int, dtype) -> torch.Tensor:
    """Integer labels ``(B,)`` -> one-hot ``(B, n_classes)``; float ``(B, n_classes)`` passes through.

    Passing soft labels (a mix of two one-hots) lets a conditional generator move smoothly between
    classes, as an age slider does.
    """
    if labels.dim() == 2 and labels.is_floating_point():
        if labels.shape[1] != n_classes:
            raise ValueError(f"soft labels have {labels.shape[1]} columns, the model has {n_classes} classes")
        return labels.to(dtype)
    return F.one_hot(labels.long(), n_classes).to(dtype)


def condition_noise(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The generator's input: noise ``(B, nz)`` followed by the one-hot label, ``(B, nz + n_classes)``."""
    return torch.cat([z, _one_hot(labels, n_classes, z.dtype)], dim=1)


def condition_features(h: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Feature maps ``(B, C, H, W)`` followed by ``n_classes`` constant maps (map ``k`` is 1 where the label is ``k``)."""
    maps = _one_hot(labels, n_classes, h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:])
    return torch.cat([h, maps.contiguous(memory_format=_format_of(h))], dim=1)


def input_block(nz: int, n_classes: int, c_out: int) -> nn.Sequential:
    """The generator's first block: the (conditioned) noise ``(B, nz + n_classes, 1, 1)`` -> ``(B, c_out, 4, 4)``.

    A 4x4 transposed convolution with stride 1 and no padding paints each input number over a 4x4 map;
    batch norm and ReLU follow, as in every block but the last. Notebook 04's exercise writes it.
    """
    return nn.Sequential(nn.ConvTranspose2d(nz + n_classes, c_out, 4, 1, 0, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(True))


def up_block(c_in: int, c_out: int) -> nn.Sequential:
    """One step up the generator: ``(B, c_in, H, W)`` -> ``(B, c_out, 2H, 2W)``.

    A strided transposed convolution (4x4, stride 2, padding 1: exactly twice the size, every
    output pixel covered by the same number of kernel taps), no bias (the batch norm after it
    would cancel one), batch normalisation, ReLU (Radford et al., 2016).
    """
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True))


class Generator(nn.Module):
    """Noise ``(B, nz)`` or ``(B, nz, 1, 1)`` (plus labels when conditional) -> images ``(B, 3, S, S)`` in [-1, 1].

    ``condition_noise`` joins the label to the noise (an instance may be given its own function).
    ``block(c_in, c_out)`` builds each up-block (default :func:`up_block`; notebook 02's exercise
    gives its own), and ``first_block(nz, n_classes, c_out)`` the input block (default
    :func:`input_block`; notebook 04's exercise); their layers are laid into ``net`` one by one, so
    the weights' names, and the checkpoints, are the same whoever wrote them.
    """

    condition_noise = staticmethod(condition_noise)

    def __init__(self, nz: int = 100, ngf: int = 64, n_classes: int = 0, image_size: int = 64, block=None,
                 first_block=None):
        super().__init__()
        self.nz, self.n_classes, self.image_size = nz, n_classes, image_size
        if block is not None:
            self.up_block = block  # the student's, recorded (a run's code fingerprint reads it)
        if first_block is not None:
            self.input_block = first_block  # the same for notebook 04's input block
        n = _n_layers(image_size)
        ch = ngf * 2 ** (n - 1)  # 512 for 64 px: halve at every upsampling, down to ngf
        first = (first_block or input_block)(nz, n_classes, ch)
        layers = [m for m in first.modules() if not list(m.children())]
        for _ in range(n - 1):
            made = (block or up_block)(ch, ch // 2)
            layers += list(made) if isinstance(made, nn.Sequential) else [made]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = z.reshape(z.shape[0], -1)
        if self.n_classes:
            if labels is None:
                raise ValueError("this generator is conditional: pass labels (class indices or one-hot rows)")
            z = self.condition_noise(z, labels, self.n_classes)
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """Images ``(B, 3, S, S)`` (plus labels when conditional) -> one logit per image, shape ``(B,)``.

    ``condition_features`` joins the label maps to the first features (an instance may be given its own function).
    """

    condition_features = staticmethod(condition_features)

    def __init__(self, ndf: int = 64, n_classes: int = 0, image_size: int = 64):
        super().__init__()
        self.n_classes, self.image_size = n_classes, image_size
        n = _n_layers(image_size)
        # The first layer has no batch norm (DCGAN); the label maps join right after it.
        self.first = nn.Sequential(nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True))
        layers, ch_in, ch = [], ndf + n_classes, ndf
        for _ in range(n - 1):
            layers += [nn.Conv2d(ch_in, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch_in = ch = ch * 2
        layers += [nn.Conv2d(ch_in, 1, 4, 1, 0, bias=False)]  # 4x4 -> 1x1: the logit
        self.rest = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.first(x)
        if self.n_classes:
            if labels is None:
                raise ValueError("this discriminator is conditional: pass labels (class indices or one-hot rows)")
            h = self.condition_features(h, labels, self.n_classes)
        return self.rest(h).reshape(-1)


def _format_of(t: torch.Tensor):
    return torch.channels_last if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def weights_init(m: nn.Module) -> None:
    """DCGAN initialisation: conv weights from N(0, 0.02); batch-norm scales from N(1, 0.02), shifts 0.

    Use it as ``net.apply(weights_init)``.
    """
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- losses


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """:math:`-\\log D(x) - \\log(1 - D(G(z)))`, averaged: BCE, target 1 on reals and 0 on fakes."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss :math:`-\\log D(G(z))`: BCE with target 1 on the fakes."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """The original minimax generator loss :math:`\\log(1 - D(G(z)))` (saturates; for comparison)."""
    return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


# --------------------------------------------------------------------------- the model


class DCGAN(Trainable):
    """A generator, a discriminator, their Adam optimisers, and one training step.

    ``train_step(batch)`` takes a batch of real images in [-1, 1] (or ``(images, labels)`` for
    the conditional version) and returns the logged numbers: ``loss_D``, ``loss_G``, ``D_x``
    (the mean of :math:`D(x)` on the reals) and ``D_G_z`` (the mean of :math:`D(G(z))` on the
    fakes, before the discriminator's update).

    The pieces of the game can be swapped (notebook 02 trains with the student's own): ``d_loss``
    (default :func:`discriminator_loss`), ``g_loss`` (default :func:`generator_loss`) and
    ``step_fn``, a whole step ``step_fn(gan, batch) -> dict`` used instead of the one below, and
    ``up_block(c_in, c_out)``, the generator's up-block (:func:`up_block`). Give
    them as keywords or assign the attributes; they are code, not state, so checkpoints and an
    exact resume are the same either way.
    """

    name = "dcgan"

    def __init__(self, settings=None, *, n_classes: int = 0, device="cpu", precision: Precision | None = None,
                 d_loss=None, g_loss=None, step_fn=None, up_block=None, first_block=None, **changes):
        s = replace(settings or config.DCGAN, **changes)  # e.g. DCGAN(ngf=32) for a quick experiment
        self.settings = s
        self.device = torch.device(device)
        self.precision = precision or Precision(self.device)
        self.config = {**config.model_config(s), "n_classes": n_classes}
        self.nz, self.n_classes = s.nz, n_classes
        G = Generator(s.nz, s.ngf, n_classes, s.image_size, block=up_block, first_block=first_block)
        self.G = self.precision.prepare(G.apply(weights_init).to(self.device))
        self.D = self.precision.prepare(Discriminator(s.ndf, n_classes, s.image_size).apply(weights_init).to(self.device))
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=s.lr, betas=(s.beta1, 0.999))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=s.lr, betas=(s.beta1, 0.999))
        self.networks = {"G": self.G, "D": self.D}
        self.optimizers = {"G": self.opt_G, "D": self.opt_D}
        self.schedulers = {}  # DCGAN keeps a constant learning rate
        # One fixed noise batch, drawn from its own generator so it never disturbs training's RNG:
        # the same faces can be watched growing all through training, and after a resume.
        g = torch.Generator().manual_seed(s.seed)
        self.fixed_noise = torch.randn(self.n_fixed(s), s.nz, generator=g).to(self.device)
        self.fixed_labels = torch.arange(len(self.fixed_noise)) % n_classes if n_classes else None
        self.d_loss, self.g_loss = d_loss or discriminator_loss, g_loss or generator_loss
        self.step_fn = step_fn

    @staticmethod
    def n_fixed(s) -> int:
        """How many fixed noise vectors to watch during training."""
        return s.n_samples

    def train_step(self, batch) -> dict:
        if self.step_fn is not None:  # a step of one's own (notebook 02's exercise)
            return self.step_fn(self, batch)
        real, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        amp = self.precision
        z = torch.randn(real.shape[0], self.nz, device=self.device)

        # 1. Discriminator: push D(x) up on real faces and D(G(z)) down on fakes.
        #    The fakes are detached: this step must not change the generator.
        with amp.autocast():
            fake = self.G(z, labels)
            real_logits = self.D(real, labels)
            fake_logits = self.D(fake.detach(), labels)
            loss_D = self.d_loss(real_logits, fake_logits)
        self.opt_D.zero_grad(set_to_none=True)
        amp.backward(loss_D)
        amp.step(self.opt_D)

        # 2. Generator: make the (just updated) discriminator call the same fakes real,
        #    with the non-saturating loss -log D(G(z)).
        with amp.autocast():
            loss_G = self.g_loss(self.D(fake, labels))
        self.opt_G.zero_grad(set_to_none=True)
        amp.backward(loss_G)
        amp.step(self.opt_G)

        return {
            "loss_D": loss_D.detach(),
            "loss_G": loss_G.detach(),
            "D_x": torch.sigmoid(real_logits.detach().float()).mean(),
            "D_G_z": torch.sigmoid(fake_logits.detach().float()).mean(),
        }

    @torch.no_grad()
    def sample(self, z: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images from noise ``z`` (default: the fixed noise batch), in [-1, 1], as float32 on the CPU.

        The generator's batch norm normalises with the statistics of this batch, as in training
        (its running averages lag far behind early on, and give grey images); the running averages
        are put back afterwards, so sampling never changes the model.
        """
        if z is None:
            z, labels = self.fixed_noise, self.fixed_labels if labels is None else labels
        if labels is not None:
            labels = labels.to(self.device)
        saved = {k: v.clone() for k, v in self.G.named_buffers()}
        was_training = self.G.training
        self.G.train()
        try:
            with self.precision.autocast():
                out = self.G(z.to(self.device), labels)
        finally:
            self.G.train(was_training)
            for k, v in self.G.named_buffers():
                v.copy_(saved[k])
        return out.float().cpu()


def diversity(images: torch.Tensor) -> float:
    """Mean pairwise L2 distance between the images of a batch (in [-1, 1]).

    A quick check for mode collapse: compare generated faces with a real batch of the same size.
    A ratio far below 1 means the generator draws (nearly) the same face for different noise.
    """
    x = images.detach().float().flatten(1).cpu()
    return torch.pdist(x).mean().item()


# --------------------------------------------------------------------------- a whole run (notebook 02 and the CLI)


class DCGANRun(Run):
    """Everything :func:`setup_dcgan` builds (see :class:`helpers.runs.Run`), plus ``cache``, the training faces."""

    loss_groups = {"losses": ["loss_D", "loss_G"], "D outputs": ["D_x", "D_G_z"]}

    def figures(self) -> dict:
        n = int(self.settings.n_samples ** 0.5)
        fig = show_grid(self.model.sample(), nrow=n, title=f"samples after {self.trainer.step} steps")
        return {"final_samples": fig}


def default_settings(device="cpu", source: str = "toy", pretrained: bool = False) -> config.DCGANSettings:
    """The settings for a device and a face source.

    - toy faces: :data:`helpers.config.DCGAN` on every device;
    - real faces: :data:`helpers.config.DCGAN_REAL` on a CUDA GPU (more epochs of bigger batches),
      :data:`helpers.config.DCGAN_REAL_CPU` elsewhere (the toy setting, measured on real faces).

    ``pretrained=True``: the settings of the course's trained weights for these faces (``weights/``,
    :func:`helpers.weights.pretrained_settings`), whatever the device, in a run folder of their own.
    """
    if pretrained:
        return weights.pretrained_settings(default_settings("cpu", source), weights.key("dcgan", source))
    if source == "toy":
        return config.DCGAN
    return config.DCGAN_REAL if torch.device(device).type == "cuda" else config.DCGAN_REAL_CPU


def setup_dcgan(settings=None, data: str | None = None, data_path=None, device=None, run_dir=None,
                max_images: int | None = None, resume: bool = True, progress: bool = True,
                verbose: bool = True, up_block=None) -> DCGANRun:
    """Data, model, trainer and sample snapshots for a DCGAN run, resumed from ``run_dir`` if it has one.

    ``data``: the face source (default: the course's, ``config.DATA_SOURCE``; "auto" is UTKFace
    when it is at hand, the toy faces otherwise). ``settings`` default to :func:`default_settings`
    for the device and the faces that were loaded. ``up_block``: the generator's up-block
    (default :func:`up_block`; notebook 02 gives the student's).
    """
    device = pick_device(device)
    source, train_df, _ = load_split(data, data_path, max_images, verbose)
    s = settings or default_settings(device, source)
    seed_everything(s.seed)
    precision = Precision(device)
    cache = build_cache(train_df, s.image_size, verbose=verbose)
    loader = face_loader(cache, s.batch_size, device, precision, seed=s.seed)
    gan = DCGAN(s, device=device, precision=precision, up_block=up_block)
    run = DCGANRun(s, device, source, gan, loader, run_dir or default_run_dir(s.run_name, source), cache=cache)
    return run.start(gan.sample, nrow=int(s.n_samples ** 0.5), resume=resume, progress=progress)
