r"""Inverting the conditional DCGAN to age a real face (notebook 05, seed 004's second step).

**The idea** (Perarnau, Raducanu and Álvarez, 2016, "Invertible Conditional GANs for image
editing", IcGAN). A conditional generator :math:`G(z, y)` draws a face from noise :math:`z` and
an age label :math:`y`. To age a *real* face :math:`x` of group :math:`s`, find the noise that
draws it, :math:`z^* \approx G^{-1}(x, s)`, and draw :math:`G(z^*, t)` with the target group
:math:`t`. A GAN has no inverse, so an **encoder** :math:`E` learns one.

**The seed's encoder** is trained on faces the generator itself makes from known noise, so the
right answer is known for every training image:

.. math::

    \mathcal L_\text{latent} = \lVert E(G(z, y)) - z \rVert_2^2, \qquad z \sim \mathcal N(0, I),\; y \sim U\{0..K-1\}.

Its last layer has no activation (the noise is unbounded; a tanh would squash it). It never
sees a real face, and the noise-space loss weighs every coordinate of :math:`z` alike, whether
it changes the picture much or not: the seed reports a loss of about 0.6 and blurry
reconstructions :math:`G(E(x), s)`.

**Closing the gap**, in two steps that the notebook measures one at a time:

(a) *real faces with an image-space loss*: the encoder also learns on real training faces,
    through the frozen generator,

    .. math::

        \mathcal L = \lambda_\text{latent} \mathcal L_\text{latent}
                   + \lambda_\text{pixel} \lVert G(E(x), s) - x \rVert_1,

    so what it minimises is the error we care about, on the faces we care about;

(b) *latent refinement*: for each face, start from the encoder's guess and descend the
    reconstruction error in :math:`z` itself (the generator's weights stay fixed),

    .. math::

        z^* = \arg\min_z \lVert G(z, s) - x \rVert_1 + \lambda_\text{prior} \lVert z \rVert_2^2 / n_z,
        \qquad z_0 = E(x).

    Optimisation-based inversion goes back to Zhu et al. (2016, "Generative Visual Manipulation
    on the Natural Image Manifold"), whose hybrid method starts the optimisation from an
    encoder's guess exactly like this, and is the way Image2StyleGAN (Abdal, Qin and Wonka, 2019)
    embeds photos in StyleGAN. The small prior term keeps :math:`z^*` where the generator was
    trained, so that changing the label still means something.

The generator used here is a frozen copy with re-estimated batch-norm statistics
(:func:`helpers.cdcgan.frozen_generator`), so each face is a fixed function of its own
:math:`(z, y)`.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import config, weights
from .cdcgan import default_settings as cdcgan_settings_for, frozen_generator, setup_cdcgan
from .dcgan import Generator, _n_layers
from .metrics import predict_groups
from .plots import show_image_rows
from .runs import Run, default_run_dir, face_loader, resolve_source, show_indices
from .training import Precision, Trainable, load_trained, pick_device

__all__ = ["Encoder", "InversionEncoder", "InversionRun", "EncoderRun", "setup_inversion", "encode", "decode",
           "latent_loss", "image_loss", "refine_step", "refine_latents", "reconstruction_error", "sharpness", "load_inversion", "invert_and_edit",
           "best_source_label", "default_settings", "cgan_settings"]


# --------------------------------------------------------------------------- the network


def down_block(c_in: int, c_out: int, kernel_size: int = 5) -> nn.Sequential:
    """One step of the encoder: ``(B, c_in, H, W)`` -> ``(B, c_out, H/2, W/2)``.

    A ``kernel_size`` convolution with stride 2, padded by ``kernel_size // 2`` so that it halves the
    size exactly, with no bias (the batch norm after it removes one), then ReLU. Notebook 05's exercise.
    """
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, 2, kernel_size // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(True))


class Encoder(nn.Module):
    """Faces ``(B, 3, S, S)`` in [-1, 1] -> noise vectors ``(B, nz)``, with no activation at the end.

    Seed 004's design: 5x5 convolutions with stride 2 (each halves the size, down to 4x4), batch
    norm and ReLU, then one linear layer to the noise. Channels double at every step from ``nef``.
    ``block(c_in, c_out, kernel_size)`` builds each step (default :func:`down_block`; notebook 05
    gives the student's); its layers are laid out one by one, so the weights keep their names.
    """

    def __init__(self, nz: int = 100, nef: int = 32, image_size: int = 64, kernel_size: int = 5, block=None):
        super().__init__()
        self.nz, self.image_size = nz, image_size
        if block is not None:
            self.down_block = block  # the student's, recorded (a run's code fingerprint reads it)
        layers, c_in, c = [], 3, nef
        for _ in range(_n_layers(image_size)):
            made = (block or down_block)(c_in, c, kernel_size)
            layers += [m for m in made.modules() if not list(m.children())]
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.to_z = nn.Linear(c_in * 16, nz)  # 4x4 maps -> z; no activation: z is unbounded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_z(self.features(x))


# --------------------------------------------------------------------------- the losses


def latent_loss(z_hat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The seed's noise-space loss: the mean squared error between the encoder's guess and the true noise."""
    return F.mse_loss(z_hat, z)


def image_loss(E: nn.Module, G: nn.Module, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Improvement (a): the mean absolute error of :math:`G(E(x), s)` against the real faces :math:`x`.

    The gradient flows through the frozen generator into the encoder.
    """
    return F.l1_loss(G(E(real), labels).float(), real.float())


# --------------------------------------------------------------------------- the training step


class InversionEncoder(Trainable):
    """An :class:`Encoder`, its optimiser and its training step against a frozen conditional generator.

    ``mode="seed"``: the seed's method, the noise-space loss on generated faces only.
    ``mode="real"``: improvement (a), plus the image-space L1 loss on the real faces of each batch.
    Batches are ``(real faces, their age groups)``. Logged: ``latent`` (noise-space MSE on
    generated faces), ``pixel_fake`` (the image L1 between those faces and the generator's
    redrawing of them from the encoder's guess: measured, never trained on), ``pixel_real``
    (mode "real": the image loss on real faces) and ``loss``.

    ``latent_loss(z_hat, z)`` and ``image_loss(E, G, real, labels)`` compute the two losses
    (default: this module's :func:`latent_loss` and :func:`image_loss`); notebook 05 passes the
    student's own. They hold no weights, so checkpoints do not depend on them. ``down_block`` builds
    the encoder's steps (:class:`Encoder`).
    """

    name = "encoder"

    def __init__(self, G: Generator, mode: str = "seed", settings=None, *, device="cpu",
                 precision: Precision | None = None, generator_info: dict | None = None, latent_loss=None,
                 image_loss=None, down_block=None, **changes):
        if mode not in ("seed", "real"):
            raise ValueError(f"mode must be 'seed' (generated faces only) or 'real' (real faces too), not {mode!r}")
        s = replace(settings or config.ENCODER, **changes)
        self.settings = s
        self.device = torch.device(device)
        self.precision = precision or Precision(self.device)
        self.G = self.precision.prepare(G.to(self.device))
        self.mode, self.nz, self.n_groups = mode, G.nz, G.n_classes
        self.lambda_latent, self.lambda_pixel = s.lambda_latent, s.lambda_pixel
        self.latent_loss, self.image_loss = _reference_latent_loss, _reference_image_loss
        self.use(latent_loss=latent_loss, image_loss=image_loss)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            E = Encoder(G.nz, s.nef, G.image_size, s.kernel_size, block=down_block)
        self.E = self.precision.prepare(E.to(self.device))
        self.opt = torch.optim.Adam(self.E.parameters(), lr=s.lr, betas=(0.9, 0.999))
        self.networks, self.optimizers, self.schedulers = {"E": self.E}, {"E": self.opt}, {}
        self.config = {**config.model_config(s), "mode": mode, "nz": G.nz, "n_groups": G.n_classes,
                       "image_size": G.image_size, "lambda_pixel": s.lambda_pixel if mode == "real" else 0.0,
                       "generator": generator_info or {}}

    def use(self, latent_loss=None, image_loss=None) -> "InversionEncoder":
        """Train with these loss functions from now on (None keeps the current one); returns the model."""
        _set_functions(self, latent_loss=latent_loss, image_loss=image_loss)
        return self

    def train_step(self, batch) -> dict:
        real, labels = batch
        amp, B = self.precision, real.shape[0]
        z = torch.randn(B, self.nz, device=self.device)
        y = torch.randint(0, self.n_groups, (B,), device=self.device)
        with torch.no_grad(), amp.autocast():
            fake = self.G(z, y)  # faces whose noise we know
        self.E.train()
        with amp.autocast():
            z_hat = self.E(fake)
            latent = self.latent_loss(z_hat.float(), z)
            loss = self.lambda_latent * latent
            out = {"latent": latent.detach()}
            if self.mode == "real":
                pixel_real = self.image_loss(self.E, self.G, real, labels)  # through the frozen G into E
                loss = loss + self.lambda_pixel * pixel_real
                out["pixel_real"] = pixel_real.detach()
        self.opt.zero_grad(set_to_none=True)
        amp.backward(loss)
        amp.step(self.opt)
        with torch.no_grad(), amp.autocast():
            out["pixel_fake"] = F.l1_loss(self.G(z_hat.detach(), y).float(), fake.float())
        out["loss"] = loss.detach()
        return out


# --------------------------------------------------------------------------- encode, decode, refine


@torch.no_grad()
def encode(E: Encoder, images, batch_size: int = 256) -> torch.Tensor:
    """Noise vectors for faces (uint8 or [-1, 1]), in eval mode, as float32 on the CPU."""
    device = next(E.parameters()).device
    was = E.training
    E.eval()
    out = [E(_as_float(x).to(device)).float().cpu() for x in torch.as_tensor(images).split(batch_size)]
    E.train(was)
    return torch.cat(out)


@torch.no_grad()
def decode(G: Generator, z: torch.Tensor, labels, batch_size: int = 256) -> torch.Tensor:
    """``G(z, labels)`` with a frozen (eval-mode) generator, in batches, as float32 on the CPU."""
    device = next(G.parameters()).device
    labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).long()
    if labels.dim() == 0:
        labels = labels.expand(len(z))
    return torch.cat([G(zz.to(device), yy.to(device)).float().cpu()
                      for zz, yy in zip(z.split(batch_size), labels.split(batch_size))])


def refine_step(G: Generator, z: torch.Tensor, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer,
                lambda_prior: float) -> torch.Tensor:
    """One step of latent refinement: descend ``|G(z, y) - x|_1 + lambda_prior * |z|^2 / nz``, per face, in ``z``.

    ``z`` ``(B, nz)`` is a leaf that requires grad and ``opt`` optimises it alone. Each face's
    loss is its own mean absolute error plus the prior term; the faces' losses are summed, so
    each face's gradient is its own. Returns each face's error *before* the step, ``(B,)``, detached.
    """
    err = (G(z, y) - x).abs().flatten(1).mean(1)
    loss = (err + lambda_prior * z.pow(2).mean(1)).sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return err.detach()


def refine_latents(G: Generator, images, labels, z0: torch.Tensor, steps: int = 200, lr: float = 0.05,
                   lambda_prior: float = 1e-3, step=None) -> tuple[torch.Tensor, list[float]]:
    """Improvement (b): gradient descent on each face's noise vector, starting from ``z0``.

    Minimises ``|G(z, y) - x|_1 + lambda_prior * |z|^2 / nz`` per face with Adam, by ``steps``
    calls of ``step`` (default :func:`refine_step`; notebook 05 passes the student's). The
    generator must be frozen and in eval mode (:func:`helpers.cdcgan.frozen_generator`), so
    faces do not interact and the result does not depend on the batch. Returns the refined
    ``z`` (CPU) and the mean reconstruction L1 before the first step and after each step.
    """
    step = step or refine_step
    device = next(G.parameters()).device
    x = _as_float(torch.as_tensor(images)).to(device)
    y = torch.as_tensor(np.asarray(labels)).long().to(device)
    z = z0.detach().clone().float().to(device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    history = []
    for _ in range(steps):
        err = step(G, z, x, y, opt, lambda_prior)
        history.append(torch.as_tensor(err).float().mean().item())
    with torch.no_grad():
        history.append((G(z, y) - x).abs().mean().item())
    return z.detach().cpu(), history


_reference_latent_loss, _reference_image_loss, _reference_refine_step = latent_loss, image_loss, refine_step


def _set_functions(owner, **functions) -> None:
    """Set each function given (not None) as an attribute of ``owner``; refuse anything that is not callable."""
    for name, fn in functions.items():
        if fn is None:
            continue
        if not callable(fn):
            raise TypeError(f"{name} must be a function, not {type(fn).__name__}")
        setattr(owner, name, fn)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float()


def reconstruction_error(x, x_hat) -> float:
    """Mean absolute pixel error between faces and their reconstructions, on the [-1, 1] scale (0 = identical)."""
    return (_as_float(torch.as_tensor(x)) - _as_float(torch.as_tensor(x_hat))).abs().mean().item()


def sharpness(images) -> float:
    """Mean absolute Laplacian of the grey-level images: how much fine detail (edges, texture) they hold.

    A blurry reconstruction scores lower than the face it reconstructs; compare the two as a ratio.
    Generator artifacts (speckle, checkerboard) count as detail too and push the ratio up: on a
    small DCGAN's faces, trust the reconstruction error more.
    """
    x = _as_float(torch.as_tensor(images)).mean(1, keepdim=True)
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    return F.conv2d(x, k).abs().mean().item()


# --------------------------------------------------------------------------- runs


class EncoderRun(Run):
    """One encoder's model, loader, trainer and run folder (see :class:`helpers.runs.Run`)."""

    loss_groups = {"losses": ["latent", "pixel_fake", "pixel_real"]}

    @property
    def E(self) -> Encoder:
        return self.model.E

    @property
    def pretrained_part(self) -> str:
        return self.model.mode  # the shipped file holds both encoders: E_seed and E_real

    def pretrained_networks(self) -> dict[str, str]:
        return {"E": f"E_{self.model.mode}"}


class InversionRun:
    """Everything :func:`setup_inversion` builds: the trained cGAN, its frozen generator, both encoders, the test faces.

    Like a :class:`helpers.runs.Run` it has ``train()``, ``describe()`` and ``save_outputs()``,
    which train and report both encoders (``seed`` and ``real``) in turn.
    """

    def __init__(self, **parts):
        self.refine_step = _reference_refine_step
        self.__dict__.update(parts)

    def use(self, latent_loss=None, image_loss=None, refine_step=None) -> "InversionRun":
        """Train both encoders with these losses, and refine with this step, from now on (None keeps the current)."""
        for mode in ("seed", "real"):
            getattr(self, mode).model.use(latent_loss=latent_loss, image_loss=image_loss)
        _set_functions(self, refine_step=refine_step)
        return self

    def describe(self) -> str:
        return (f"{len(self.cgan.cache):,} real training faces ({self.cgan.source}), {len(self.eval_idx)} test faces "
                f"measured, on {self.device}")

    def train(self, steps: int | None = None, pretrained: bool = False):
        """Train (or resume) both encoders until ``steps`` (default: the settings'); returns the real one's history.

        ``pretrained=True``: load both from the course's weights instead (:meth:`helpers.runs.Run.load_pretrained`).
        """
        for mode in ("seed", "real"):
            history = getattr(self, mode).train(steps=steps, pretrained=pretrained)
        return history

    @property
    def trainer(self):
        return self.real.trainer

    # ----- the three inversions of the notebook

    def invert(self, idx=None, method: str = "refined", steps: int | None = None):
        """Noise vectors of test faces ``idx`` (default: the evaluation faces) by ``method``.

        ``"seed"``: the seed's encoder; ``"real"``: the encoder trained on real faces too;
        ``"refined"``: ``"real"`` followed by latent refinement. Returns ``(z, history)``
        (history: refinement errors, empty for the encoders alone).
        """
        idx = self.eval_idx if idx is None else idx
        x, y = self.test_images[idx], self.test_labels[idx]
        if method == "seed":
            return encode(self.seed.E, x), []
        z = encode(self.real.E, x)
        if method == "real":
            return z, []
        if method != "refined":
            raise ValueError(f"method must be 'seed', 'real' or 'refined', not {method!r}")
        s = self.settings
        return refine_latents(self.G, x, y, z, steps if steps is not None else s.refine_steps, s.refine_lr,
                              s.lambda_prior, step=self.refine_step)

    METHODS = {"seed": "seed: encoder on generated faces", "real": "(a) + real faces, image loss",
               "refined": "(a) + (b) latent refinement"}

    def measure(self, method: str) -> dict:
        """Reconstruction error, sharpness and edit agreement of one method on the evaluation faces.

        - ``L1``: mean absolute pixel error of :math:`G(z, s)` against the real face, on the
          [-1, 1] scale (lower is better);
        - ``sharpness``: Laplacian detail of the reconstructions as a fraction of the real faces'
          (1 = as sharp; the seed's blur shows as a small number);
        - ``edit agreement``: the faces drawn with another label, read by notebook 04's age
          classifier: how often it reads the target group (does the edit still obey the label?).
        """
        x, y = self.test_images[self.eval_idx], np.asarray(self.test_labels)[self.eval_idx]
        K = self.G.n_classes
        target = (y + 1 + np.arange(len(y)) % max(1, K - 1)) % K
        t0 = time.time()
        z, hist = self.invert(method=method)
        if hist:
            self.refine_history = hist
        rec, edit = decode(self.G, z, y), decode(self.G, z, target)
        seconds = time.time() - t0
        return {"method": self.METHODS[method], "L1": reconstruction_error(x, rec),
                "sharpness": sharpness(rec) / sharpness(x),
                "edit agreement": float((predict_groups(self.cgan.classifier(), edit) == target).mean()),
                "seconds": seconds}

    def evaluate(self, verbose: bool = True) -> pd.DataFrame:
        """:meth:`measure` for the three methods, as one table (one row per method)."""
        table = pd.DataFrame([self.measure(m) for m in self.METHODS]).set_index("method")
        if verbose:
            print(table.round(3).to_string())
        return table

    def reconstruction_rows(self, idx=None) -> tuple[list[torch.Tensor], list[str]]:
        """The real faces and their reconstructions by each method (rows for :func:`helpers.cdcgan.show_image_rows`)."""
        idx = self.show_idx if idx is None else idx
        y = np.asarray(self.test_labels)[idx]
        rows, names = [_as_float(self.test_images[idx])], ["real"]
        for method, name in [("seed", "seed encoder"), ("real", "(a) real faces"), ("refined", "(a)+(b) refined")]:
            z, _ = self.invert(idx, method)
            rows.append(decode(self.G, z, y))
            names.append(name)
        return rows, names

    def edit_rows(self, idx=None, method: str = "refined") -> tuple[list[torch.Tensor], list[str], list[str]]:
        """Real faces, their reconstruction, and the same noise with every label: rows, row names, column titles."""
        idx = self.show_idx if idx is None else idx
        y = np.asarray(self.test_labels)[idx]
        z, _ = self.invert(idx, method)
        rows = [_as_float(self.test_images[idx]), decode(self.G, z, y)]
        names = ["real", "reconstructed"]
        for k, g in enumerate(self.group_names):
            rows.append(decode(self.G, z, k))
            names.append(f"as {g}")
        cols = [f"{self.group_names[s]}" for s in y]
        return rows, names, cols

    def save_outputs(self) -> dict:
        """Both encoders' loss curves, the three methods' table, and the reconstruction, edit and refinement figures."""
        out = {f"losses_{m}": getattr(self, m).save_outputs().get("losses") for m in ("seed", "real")}
        table = self.evaluate()
        table.to_csv(self.run_dir / "metrics.csv")
        out["metrics"], out["numbers"] = self.run_dir / "metrics.csv", table.round(4).to_dict(orient="index")
        rows, names, cols = self.edit_rows()
        out["grid"] = _savefig(show_image_rows(rows, names, cols, title="age edits of real test faces "
                                               "(encoder (a) + refinement (b))"), self.run_dir / "edits.png")
        rows, names = self.reconstruction_rows()
        out["reconstructions"] = _savefig(show_image_rows(rows, names, title="real test faces and their reconstructions"),
                                          self.run_dir / "reconstructions.png")
        if getattr(self, "refine_history", None):
            fig, ax = plt.subplots(figsize=(5, 3))
            ax.plot(self.refine_history)
            ax.set(xlabel="refinement step", ylabel="mean L1 reconstruction error", title="latent refinement")
            fig.tight_layout()
            out["refinement"] = _savefig(fig, self.run_dir / "refinement.png")
        return out


def _savefig(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _save_generator(G: Generator, path: Path, info: dict) -> None:
    """The frozen generator beside the encoder, so the encoder's run folder is all that aging a photo needs."""
    state = {"config": {"nz": G.nz, "ngf": info["ngf"], "n_classes": G.n_classes, "image_size": G.image_size},
             "groups": list(info["groups"]), "step": int(info["step"]),
             "state": {k: v.detach().cpu() for k, v in G.state_dict().items()}}
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_frozen_generator(path, device="cpu") -> Generator:
    """The generator saved by the encoder run (``generator.pt``), in eval mode with ``groups`` attached."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    c = state["config"]
    G = Generator(c["nz"], c["ngf"], c["n_classes"], c["image_size"])
    G.load_state_dict(state["state"])
    G.groups, G.step = list(state["groups"]), int(state["step"])
    for p in G.parameters():
        p.requires_grad_(False)
    return G.to(device).eval()


def default_settings(device="cpu", source: str = "toy", pretrained: bool = False) -> config.EncoderSettings:
    """The settings for a device and a face source; each names the conditional DCGAN it inverts.

    - toy faces: :data:`helpers.config.ENCODER` on every device (it inverts ``CDCGAN``);
    - real faces: :data:`helpers.config.ENCODER_REAL` on a CUDA GPU (it inverts the GPU run,
      ``CDCGAN_REAL``), :data:`helpers.config.ENCODER_REAL_CPU` elsewhere (the toy setting, inverting
      ``CDCGAN_REAL_CPU``). This follows :func:`helpers.cdcgan.default_settings` for the same device and faces.

    ``pretrained=True``: the settings of the course's trained weights for these faces (``weights/``,
    :func:`helpers.weights.pretrained_settings`), whatever the device, in a run folder of their own.
    """
    if pretrained:
        return weights.pretrained_settings(default_settings("cpu", source), weights.key("encoder", source))
    if source == "toy":
        return config.ENCODER
    return config.ENCODER_REAL if torch.device(device).type == "cuda" else config.ENCODER_REAL_CPU


def cgan_settings(settings) -> config.CDCGANSettings:
    """The conditional DCGAN settings that ``settings.cgan_settings`` names in :mod:`helpers.config`.

    Raises ``ValueError`` (listing the names it may take) when it names no conditional DCGAN settings.
    """
    c = getattr(config, settings.cgan_settings, None)
    if not isinstance(c, config.CDCGANSettings):
        names = sorted(k for k, v in vars(config).items() if isinstance(v, config.CDCGANSettings))
        raise ValueError(f"settings.cgan_settings must name a conditional DCGAN setting in helpers.config "
                         f"({', '.join(names)}), not {settings.cgan_settings!r}")
    return c


def setup_inversion(settings=None, data: str | None = None, data_path=None, device=None, run_dir=None,
                    cgan_run_dir=None, max_images: int | None = None, resume: bool = True, progress: bool = True,
                    verbose: bool = True, latent_loss=None, image_loss=None, refine_step=None,
                    down_block=None, pretrained: bool = False) -> InversionRun:
    """The trained conditional DCGAN, its frozen generator, and both encoders with their trainers.

    The conditional DCGAN is notebook 04's run (``settings.cgan``: the "wide" or the "seed"
    groups of the settings that ``settings.cgan_settings`` names, :data:`helpers.config.CDCGAN` by
    default), loaded through :func:`helpers.cdcgan.setup_cdcgan`;
    if it has not finished training, it is trained here first, with the same code and run folder,
    so this works without notebook 04. The seed's encoder goes to ``run_dir + "-seed"``, the
    improved one to ``run_dir`` (default ``RUNS_DIR / settings.run_name``), which also receives
    ``generator.pt``, the frozen generator the encoder inverts. ``latent_loss``, ``image_loss``
    and ``refine_step`` replace the reference functions (see :meth:`InversionRun.use`); ``down_block``
    builds both encoders' steps (default :func:`down_block`; notebook 05's exercise).
    ``settings`` default to :func:`default_settings` for the device and the face source that
    ``data`` resolves to (:func:`helpers.runs.resolve_source`). ``pretrained=True``: the conditional
    DCGAN is the course's shipped one (``weights/cdcgan[-wide][-toy]``), loaded, not trained, and
    ``settings`` default to the shipped encoders' (``default_settings(..., pretrained=True)``).
    """
    device = pick_device(device)
    source = resolve_source(data, data_path)
    s = settings or (default_settings(device, source, pretrained=True) if pretrained else default_settings(device, source))
    pretrained = pretrained or s.run_name.endswith(weights.RUN_SUFFIX)  # the shipped encoders invert the shipped cGAN
    c = cdcgan_settings_for(device, source, pretrained=True) if pretrained else cgan_settings(s)
    if s.cgan not in ("wide", "seed"):
        raise ValueError(f"settings.cgan must be 'wide' or 'seed', not {s.cgan!r}")
    groups = c.wide_groups if s.cgan == "wide" else c.groups
    cgan = setup_cdcgan(c, groups, data=data, data_path=data_path, device=device, run_dir=cgan_run_dir,
                        max_images=max_images, progress=progress, verbose=verbose)
    if pretrained:
        cgan.load_pretrained(check_steps=0)  # the course's own code: nothing of yours to check here
    elif cgan.trainer.step < c.steps:
        if verbose:
            print(f"the conditional DCGAN in {cgan.run_dir} has {cgan.trainer.step} of {c.steps} steps: "
                  "training it now (notebook 04's run; it resumes from its last checkpoint)")
        cgan.train()
    elif verbose:
        print(f"conditional DCGAN ({', '.join(cgan.group_names)}) loaded from {cgan.run_dir}, "
              f"{cgan.trainer.step} steps")
    G = frozen_generator(cgan.gan.G, s.calibration_batches, seed=s.seed)
    info = {"run": cgan.run_dir.name, "step": int(cgan.trainer.step), "groups": list(cgan.group_names),
            "ngf": cgan.gan.config["ngf"]}
    precision = cgan.gan.precision
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(s.run_name, cgan.source)
    runs = {}
    for mode, folder in [("seed", run_dir.with_name(run_dir.name + "-seed")), ("real", run_dir)]:
        model = InversionEncoder(G, mode, s, device=device, precision=precision, generator_info=info,
                                 down_block=down_block)
        loader = face_loader(cgan.cache, s.batch_size, device, precision, seed=s.seed, labels=cgan.labels)
        folder.mkdir(parents=True, exist_ok=True)
        _save_generator(G, folder / "generator.pt", info)
        run = EncoderRun(s, device, cgan.source, model, loader, folder)
        runs[mode] = run.start(None, nrow=1, resume=resume, progress=progress)
    n_eval = min(s.n_eval, len(cgan.test_labels))
    eval_idx = np.sort(np.random.default_rng(s.seed).choice(len(cgan.test_labels), n_eval, replace=False))
    return InversionRun(settings=s, cgan=cgan, G=G, device=device, seed=runs["seed"], real=runs["real"],
                        test_images=cgan.test_images, test_labels=np.asarray(cgan.test_labels),
                        group_names=cgan.group_names, eval_idx=eval_idx,
                        show_idx=show_indices(cgan.test_labels, s.n_show),
                        run_dir=run_dir).use(latent_loss, image_loss, refine_step)


# --------------------------------------------------------------------------- aging a photo (notebook 08)


def load_inversion(run_dir, device="cpu") -> tuple[Generator, Encoder, dict, Path]:
    """The frozen generator and the trained encoder of an encoder run folder: ``(G, E, state, checkpoint_path)``.

    ``G`` carries ``groups``; both are in eval mode. A folder of another model is refused by name.
    """
    run_dir = Path(run_dir)
    state, path = load_trained(run_dir, InversionEncoder.name, "python -m helpers.train encoder")
    if not (run_dir / "generator.pt").is_file():
        raise FileNotFoundError(f"{run_dir} has no generator.pt beside the encoder: train it again "
                                "(python -m helpers.train encoder)")
    c = state["config"]
    G = load_frozen_generator(run_dir / "generator.pt", device)
    E = Encoder(c["nz"], c["nef"], c["image_size"], c["kernel_size"])
    E.load_state_dict(state["networks"]["E"])
    return G, E.to(device).eval(), state, path


def invert_and_edit(G: Generator, E: Encoder, images, source_labels, target_labels, refine_steps: int | None = None):
    """Real faces moved to ``target_labels`` by the encoder + conditional DCGAN route of this notebook.

    Each face is encoded, its noise refined under its own group ``source_labels`` (improvement
    (b)), and drawn with the target group. Returns ``(edited, z)``: float images in [-1, 1] on
    the CPU and the refined noise.
    """
    s = config.ENCODER
    steps = s.refine_steps if refine_steps is None else refine_steps
    x = _as_float(torch.as_tensor(images))
    z = encode(E, x)
    if steps:
        z, _ = refine_latents(G, x, source_labels, z, steps, s.refine_lr, s.lambda_prior)
    return decode(G, z, target_labels), z


def best_source_label(G: Generator, E: Encoder, x) -> int:
    """The age group under which the generator redraws the encoder's guess of face ``x`` best.

    A photo has no age label; this is the one the face most likely has, for :func:`invert_and_edit`.
    """
    x = _as_float(torch.as_tensor(x))
    z0 = encode(E, x)
    errors = [reconstruction_error(x, decode(G, z0, k)) for k in range(G.n_classes)]
    return int(np.argmin(errors))
