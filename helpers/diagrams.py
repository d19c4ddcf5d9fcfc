"""The course's architecture diagrams, drawn with matplotlib: ``python -m helpers.diagrams``.

Writes four figures to ``imgs/`` (``--out`` elsewhere, ``--only NAME`` for one):

- ``diagram_cyclegan.png``  the CycleGAN cycle: both generators, both discriminators, the four losses
  (notebook 03);
- ``diagram_patchgan.png``  the PatchGAN's receptive field over a face, computed from the layers of
  :class:`helpers.cyclegan.PatchDiscriminator` (notebook 03);
- ``diagram_agegan.png``    encoder -> age modulator -> AdaIN -> decoder (notebook 06);
- ``diagram_cdcgan.png``    the conditional DCGAN's label path into G and D (notebook 04).

The notebooks show them through absolute raw GitHub URLs (:func:`diagram_url`), built from
:data:`helpers.colab.REPO` and :data:`helpers.colab.BRANCH`, so that they render on Colab (which
cannot follow a relative ``../imgs`` path) and locally alike.

An app (top layer): it imports the model families only to measure them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg") if __name__ == "__main__" else None
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from torch import nn

from . import colab, config
from .cyclegan import PatchDiscriminator
from .toyfaces import render_face

NAMES = ("cyclegan", "patchgan", "agegan", "cdcgan")

#: Colours: generators, discriminators, losses, data, conditions.
C_G, C_D, C_LOSS, C_DATA, C_COND = "#cfe3f7", "#f9d6c6", "#d9534f", "#eeeeee", "#d8efd0"


def diagram_url(name: str, repo: str = colab.REPO, branch: str = colab.BRANCH, ext: str = "png") -> str:
    """``https://raw.githubusercontent.com/<repo>/<branch>/imgs/diagram_<name>.<ext>``: what the notebooks embed."""
    return colab.raw_image_url(f"diagram_{name}.{ext}", repo, branch)


def embed(name: str, alt: str, width: int = 720) -> str:
    """The markdown (an HTML ``img``, for its width) that shows diagram ``name`` on Colab and locally."""
    return f'<img src="{diagram_url(name)}" alt="{alt}" width="{width}">'


# --------------------------------------------------------------------------- receptive fields


def conv_layers(net: nn.Module) -> list[tuple[int, int, int]]:
    """``(kernel, stride, padding)`` of every convolution of ``net``, in the order they run."""
    out = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            out.append((m.kernel_size[0], m.stride[0], m.padding[0]))
    return out


def receptive_field(net: nn.Module) -> tuple[int, int, float]:
    """``(size, jump, start)`` of one output of a chain of convolutions, measured from its layers.

    ``size``: how many input pixels across one output sees; ``jump``: how far apart (in input
    pixels) neighbouring outputs look; ``start``: the centre, in input pixels, of the first
    output's field (negative when padding puts it off the image). Output ``(i, j)`` sees the square
    of side ``size`` centred on ``(start + i * jump, start + j * jump)``.
    """
    size, jump, start = 1, 1, 0.5
    for k, s, p in conv_layers(net):
        size += (k - 1) * jump
        start += ((k - 1) / 2 - p) * jump
        jump *= s
    return size, jump, start


def patch_boxes(net: nn.Module, image_size: int) -> tuple[int, list[tuple[float, float, float, float]]]:
    """The output map's side at ``image_size``, and each output's field ``(x0, y0, x1, y1)`` in pixels, clipped."""
    with torch.no_grad():
        side = net(torch.zeros(1, 3, image_size, image_size)).shape[-1]
    size, jump, start = receptive_field(net)
    boxes = []
    for i in range(side):
        for j in range(side):
            cx, cy = start + j * jump, start + i * jump
            x0, y0 = max(0.0, cx - size / 2), max(0.0, cy - size / 2)
            x1, y1 = min(image_size, cx + size / 2), min(image_size, cy + size / 2)
            boxes.append((x0, y0, x1, y1))
    return side, boxes


# --------------------------------------------------------------------------- drawing pieces


def _face(identity: int, age: float, size: int = 96) -> np.ndarray:
    return np.asarray(render_face(identity, age, size=size))


def _box(ax, x, y, w, h, text, color, fontsize=12, weight="normal"):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                fc=color, ec="#333333", lw=1.3))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, weight=weight)


def _arrow(ax, p, q, color="#333333", text=None, style="-|>", rad=0.0, lw=1.6, fontsize=10.5, ls="-",
           text_offset=(0.0, 0.18)):
    ax.add_patch(FancyArrowPatch(p, q, arrowstyle=style, mutation_scale=16, color=color, lw=lw,
                                 connectionstyle=f"arc3,rad={rad}", linestyle=ls))
    if text:
        mx, my = (p[0] + q[0]) / 2 + text_offset[0], (p[1] + q[1]) / 2 + text_offset[1]
        ax.text(mx, my, text, ha="center", va="center", fontsize=fontsize, color=color)


def _image(ax, img, x, y, w, label=None, fontsize=11):
    ax.imshow(img, extent=(x - w / 2, x + w / 2, y - w / 2, y + w / 2), zorder=2)
    ax.add_patch(Rectangle((x - w / 2, y - w / 2), w, w, fill=False, ec="#333333", lw=1, zorder=3))
    if label:
        ax.text(x, y - w / 2 - 0.22, label, ha="center", va="top", fontsize=fontsize)


def _canvas(w, h, figsize):
    fig, ax = plt.subplots(figsize=figsize)
    ax.set_xlim(0, w), ax.set_ylim(0, h)
    ax.set_aspect("equal"), ax.axis("off")
    return fig, ax


# --------------------------------------------------------------------------- the four diagrams


def draw_cyclegan():
    """Both directions of the cycle, the two discriminators and the four losses."""
    fig, ax = _canvas(17, 10.6, (13.5, 8.4))
    young, old = _face(7, 25), _face(7, 72)
    other_old, other_young = _face(31, 70), _face(31, 24)
    for row, (y, src, fake, rec, gf, gb, dname, dom_s, dom_t, real_t) in enumerate([
        (8.2, young, old, young, "$G_{AB}$\nages", "$G_{BA}$\nrejuvenates", "$D_B$", "a", "b", other_old),
        (2.4, other_old, other_young, other_old, "$G_{BA}$\nrejuvenates", "$G_{AB}$\nages", "$D_A$", "b", "a",
         young),
    ]):
        up = 1 if row == 0 else -1  # the cycle arc goes outwards, the discriminator inwards
        _image(ax, src, 1.2, y, 1.6, f"real ${dom_s}$")
        _box(ax, 3.6, y, 1.7, 1.1, gf, C_G, 12)
        _image(ax, fake, 6.0, y, 1.6, f"fake $\\hat {dom_t}$")
        _box(ax, 8.4, y, 1.7, 1.1, gb, C_G, 12)
        _image(ax, rec, 10.8, y, 1.6, f"back: ${dom_s}'$")
        _arrow(ax, (2.0, y), (2.75, y)), _arrow(ax, (4.45, y), (5.2, y))
        _arrow(ax, (6.8, y), (7.55, y)), _arrow(ax, (9.25, y), (10.0, y))
        # the discriminator of the target domain: the fake against real faces of that domain
        dy = y - 2.3 * up
        _box(ax, 6.0, dy, 1.5, 0.8, dname, C_D, 13)
        _arrow(ax, (6.0, y - 1.25 * up), (6.0, dy + 0.4 * up))
        _image(ax, real_t, 3.4, dy, 1.0, None)
        ax.text(2.7, dy, f"real ${dom_t}$", ha="right", va="center", fontsize=11)
        _arrow(ax, (3.95, dy), (5.25, dy))
        loss = "adversarial (LSGAN):\n" + (r"$(D_B(\hat b)-1)^2$ for $G_{AB}$" if row == 0
                                           else r"$(D_A(\hat a)-1)^2$ for $G_{BA}$")
        ax.text(7.0, dy, loss, ha="left", va="center", fontsize=11.5, color=C_LOSS)
        # cycle consistency: back to where it started
        off = 0.85 if row == 0 else 1.3  # below the faces, clear of their labels
        _arrow(ax, (10.8, y + off * up), (1.2, y + off * up), color=C_LOSS, rad=0.16 * up, style="<|-|>", ls="--")
        ax.text(6.0, y + (off + 1.2) * up, f"cycle: $\\lambda_{{cyc}}\\,\\Vert {dom_s}' - {dom_s} \\Vert_1$",
                ha="center", va="center", fontsize=12.5, color=C_LOSS)
    _box(ax, 14.5, 6.7, 4.4, 2.4, "identity (Taigman et al., 2017):\n"
         r"$G_{BA}(a) \approx a$,  $G_{AB}(b) \approx b$" "\n"
         r"$\lambda_{id}\,\Vert G_{BA}(a)-a\Vert_1$" "\n" r"$+\ \lambda_{id}\,\Vert G_{AB}(b)-b\Vert_1$",
         "#fbeaea", 11.5)
    _box(ax, 14.5, 3.6, 4.4, 2.4, "the four losses\n1. adversarial: $G_{AB}$ vs $D_B$\n"
         "2. adversarial: $G_{BA}$ vs $D_A$\n3. cycle, both ways\n4. identity, both ways", "#ffffff", 11.5)
    ax.set_title("CycleGAN: two generators, two discriminators, four losses (A = young, B = old)", fontsize=14)
    return fig


def draw_patchgan(sizes=(128, 64), n_layers: int = 3, ndf: int = 8):
    """One PatchGAN score's field over a face at each training size, from the discriminator's own layers."""
    net = PatchDiscriminator(ndf=ndf, n_layers=n_layers)
    size, jump, _ = receptive_field(net)
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.6 * len(sizes), 6.2))
    for ax, s in zip(np.atleast_1d(axes), sizes):
        side, boxes = patch_boxes(net, s)
        ax.imshow(_face(12, 45, s), extent=(0, s, s, 0), interpolation="nearest")
        _, _, start = receptive_field(net)
        cs = [start + i * jump for i in range(side)]
        xx, yy = np.meshgrid(cs, cs)
        ax.scatter(xx, yy, s=8, c="white", edgecolors="black", linewidths=0.4, zorder=3)
        for idx, color in ((0, "#ffcc00"), ((side // 2) * side + side // 2, "#ff3333")):
            x0, y0, x1, y1 = boxes[idx]
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=color, lw=3, zorder=4))
            cx, cy = cs[idx % side], cs[idx // side]
            ax.scatter([cx], [cy], s=60, c=color, edgecolors="black", zorder=5)
        ax.set_xlim(-0.5, s - 0.5), ax.set_ylim(s - 0.5, -0.5)
        ax.set_xticks([0, s // 2, s]), ax.set_yticks([0, s // 2, s])
        seen = (f"each sees a {size}x{size} px square, {size / s:.0%} of the width" if size < s
                else f"each {size}x{size} px field is wider than the image")
        ax.set_title(f"{s} px (the {'GPU' if s >= 128 else 'CPU'} setting): {side}x{side} scores\n{seen}",
                     fontsize=13)
    fig.suptitle(f"PatchGAN ({n_layers} stride-2 + 2 stride-1 4x4 convs): one score per patch, "
                 f"neighbours {jump} px apart\n(red: the field of the centre score, yellow: the corner "
                 "score's, clipped to the image; dots: where each score looks)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def draw_agegan():
    """Encoder -> identity code -> decoder whose norms are modulated by the target age."""
    fig, ax = _canvas(16, 8.6, (13, 7))
    ax.set_ylim(-0.9, 8.6)
    _image(ax, _face(5, 28), 1.1, 5.0, 1.7, "face $x$ (age 28)")
    _box(ax, 3.7, 5.0, 2.0, 1.6, "identity\nencoder $E$\nconvs + res\nblocks", C_G, 11.5)
    _arrow(ax, (1.95, 5.0), (2.7, 5.0))
    _box(ax, 6.3, 5.0, 2.0, 1.2, "code\n$h = E(x)$\n4ngf x S/4 x S/4", C_DATA, 10)
    _arrow(ax, (4.7, 5.0), (5.4, 5.0))
    # decoder: a stack of AdaIN layers
    ys = [6.6, 5.5, 4.4, 3.3]
    names = ["res block 1: AdaIN$_1$, AdaIN$_2$", "res block 2: AdaIN$_3$, AdaIN$_4$",
             "up x2: conv, AdaIN$_5$", "up x2: conv, AdaIN$_6$"]
    ax.add_patch(FancyBboxPatch((8.3, 2.6), 3.9, 4.7, boxstyle="round,pad=0.05", fc="#f4f8fc", ec="#333333", lw=1.3))
    ax.text(10.25, 7.55, "decoder", ha="center", fontsize=12.5, weight="bold")
    for y, n in zip(ys, names):
        _box(ax, 10.25, y, 3.5, 0.8, n, C_G, 10.5)
    _arrow(ax, (7.2, 5.0), (8.45, 5.0))
    _image(ax, _face(5, 70), 14.3, 5.0, 1.7, r"$G(x, t)$: 60-74")
    _arrow(ax, (12.25, 5.0), (13.45, 5.0), text="to RGB", text_offset=(0, 0.25))
    # the modulator
    _box(ax, 1.3, 1.3, 2.2, 1.3, "target group $t$\none-hot or a mix\n[0 0 0 0 1 0]", C_COND, 10)
    _box(ax, 5.2, 1.3, 3.2, 1.3, "age modulator $M$\nembed $t$, join mean of $h$,\nMLP, one head per layer", C_COND, 10)
    _arrow(ax, (2.4, 1.3), (3.6, 1.3))
    _arrow(ax, (6.3, 4.35), (5.6, 1.95), text="mean over space", text_offset=(-1.25, 0.1), ls="--")
    for y in ys:
        _arrow(ax, (6.8, 1.6), (8.45, y - 0.1), color="#2e7d32", rad=-0.05, lw=1.1)
    ax.text(7.9, 1.2, "$\\gamma_l(t), \\beta_l(t)$\nfor each of\nthe 6 layers", fontsize=11.5, color="#2e7d32",
            ha="left", va="center")
    ax.text(8.0, -0.35, r"AdaIN$(a_l; t) = (1 + \gamma_l(t))\,\dfrac{a_l - \mu(a_l)}{\sigma(a_l)} + \beta_l(t)$"
            "   (conditional instance norm: $\\mu, \\sigma$ per channel over the image)",
            ha="center", fontsize=12)
    ax.set_title(r"The age-modulated generator: $G(x, t) = \mathrm{Dec}(E(x);\ M(E(x), t))$", fontsize=14)
    return fig


def draw_cdcgan():
    """Where the one-hot age label enters the generator (with the noise) and the discriminator (as maps)."""
    fig, ax = _canvas(16, 8.4, (13, 7.2))
    ax.set_ylim(-0.5, 8.4)
    ax.text(8, 7.9, "generator", fontsize=13, weight="bold", ha="center")
    _box(ax, 1.3, 6.6, 2.2, 0.9, "noise $z$\n($n_z$ numbers)", C_DATA, 11)
    _box(ax, 1.3, 5.2, 2.2, 0.9, "label $y$, one-hot:\n[0 1] = 60+", C_COND, 11)
    _box(ax, 4.2, 5.9, 2.2, 1.2, "join\n$[z;\\ \\mathrm{onehot}(y)]$\n($n_z + K$)", C_COND, 11)
    _arrow(ax, (2.4, 6.6), (3.1, 6.1)), _arrow(ax, (2.4, 5.2), (3.1, 5.7), color="#2e7d32")
    _box(ax, 8.1, 5.9, 3.8, 1.2, "transposed convs\n4x4, stride 2, batch norm,\nReLU; tanh at the end", C_G, 11)
    _arrow(ax, (5.3, 5.9), (6.2, 5.9))
    _image(ax, _face(9, 66, 64), 11.6, 5.9, 1.6, "$G(z, y)$")
    _arrow(ax, (10.0, 5.9), (10.8, 5.9))
    # discriminator
    ax.text(8, 3.85, "discriminator: judges the pair (face, label)", fontsize=13, weight="bold", ha="center")
    _image(ax, _face(9, 66, 64), 1.2, 2.2, 1.5, "face $x$ or $G(z,y)$")
    _box(ax, 3.7, 2.2, 2.0, 1.1, "first conv\n4x4 stride 2\nLeakyReLU", C_D, 11)
    _arrow(ax, (1.95, 2.2), (2.7, 2.2))
    _box(ax, 6.6, 2.2, 2.3, 1.1, "$h$: ndf maps\n+ $K$ label maps", C_DATA, 11)
    _arrow(ax, (4.7, 2.2), (5.45, 2.2))
    _box(ax, 6.6, 0.3, 5.2, 1.0, "the same label $y$ as $K$ maps of S/2 x S/2:\nmap $k$ is 1 everywhere if $y = k$, else 0",
         C_COND, 10.5)
    _arrow(ax, (6.6, 0.82), (6.6, 1.65), color="#2e7d32")
    _box(ax, 10.3, 2.2, 2.9, 1.1, "convs, batch norm\nLeakyReLU", C_D, 11)
    _arrow(ax, (7.75, 2.2), (8.85, 2.2))
    _box(ax, 13.9, 2.2, 2.6, 1.1, "one logit:\nreal pair or fake?", "#ffffff", 11)
    _arrow(ax, (11.75, 2.2), (12.6, 2.2))
    ax.text(13.9, 0.7, "a real 25-year-old with\nthe label 60+ is a fake pair", ha="center", fontsize=10.5,
            color=C_LOSS)
    ax.set_title("The conditional DCGAN: the age label goes into both players (green)", fontsize=14)
    return fig


DRAW = {"cyclegan": draw_cyclegan, "patchgan": draw_patchgan, "agegan": draw_agegan, "cdcgan": draw_cdcgan}


def write_all(out: Path = config.IMGS_DIR, names=NAMES, dpi: int = 110) -> list[Path]:
    """Draw ``names`` and save them as ``out/diagram_<name>.png``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        fig = DRAW[name]()
        path = out / f"diagram_{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Draw the course's architecture diagrams into imgs/.")
    ap.add_argument("--out", type=Path, default=config.IMGS_DIR)
    ap.add_argument("--only", choices=NAMES, nargs="*", default=list(NAMES))
    ap.add_argument("--urls", action="store_true", help="print the URL each notebook embeds")
    args = ap.parse_args(argv)
    for p in write_all(args.out, args.only):
        print(p)
    if args.urls:
        for n in args.only:
            print(diagram_url(n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
