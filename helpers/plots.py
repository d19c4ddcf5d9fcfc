"""Figures the notebooks share: image grids, loss curves, and training animations.

Images in the course are float tensors in [-1, 1] (what a tanh generator outputs) or uint8
tensors/arrays; every function here accepts both and undoes the normalisation itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> [0, 1] (uint8 images -> [0, 1] too)."""
    images = torch.as_tensor(images).detach().cpu()
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    return ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def make_grid(images, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """A batch ``(B, 3, H, W)`` (float in [-1, 1] or uint8) -> one uint8 picture ``(H', W', 3)``.

    ``nrow`` images per row, separated by ``padding`` white pixels.
    """
    x = denormalize(images)
    if x.dim() == 3:
        x = x[None]
    x = (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    b, h, w, c = x.shape
    cols = min(nrow, b)
    rows = -(-b // cols)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), 255, dtype=np.uint8)
    for i, img in enumerate(x):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[top : top + h, left : left + w] = img
    return grid


def save_image(grid: np.ndarray, path) -> Path:
    """Write a uint8 ``(H, W, 3)`` picture (e.g. from :func:`make_grid`) to ``path``; returns the path.

    Written under a temporary name and renamed, so an interrupted run never leaves a half-written
    picture for the animation to trip over.
    """
    import os

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        Image.fromarray(np.asarray(grid, dtype=np.uint8)).save(tmp, format=Image.registered_extensions().get(
            path.suffix.lower(), "PNG"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def show_grid(images, nrow: int = 8, title: str | None = None, ax=None, figsize=(6, 6)):
    """Show a batch of images as one grid; returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    grid = images if isinstance(images, np.ndarray) and images.ndim == 3 and images.shape[-1] == 3 else make_grid(images, nrow)
    ax.imshow(grid)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def show_real_fake(real, fake, nrow: int = 8, figsize=(12, 6)):
    """Real faces on the left, generated faces on the right; returns the figure."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=figsize)
    show_grid(real, nrow, "real faces", ax=a)
    show_grid(fake, nrow, "generated faces", ax=b)
    fig.tight_layout()
    return fig


def smooth_series(values: pd.Series, window: int) -> pd.Series:
    """A trailing moving average over ``window`` steps (NaNs are ignored)."""
    return values.rolling(window, min_periods=1).mean()


def plot_losses(history, groups=None, smooth: int | None = None, figsize=None, logy: bool = False):
    """Loss curves from a :class:`helpers.training.LossHistory` (or its DataFrame), one panel per group.

    ``groups`` maps a panel title to the terms drawn in it, e.g.
    ``{"losses": ["loss_D", "loss_G"], "D outputs": ["D_x", "D_G_z"]}``; a list of lists works
    too, and ``None`` puts every term in one panel. The raw values are drawn faintly, with a
    moving average over ``smooth`` steps on top (default: about 1/50 of the run).
    """
    import matplotlib.pyplot as plt

    df = history.to_frame() if hasattr(history, "to_frame") else pd.DataFrame(history)
    if groups is None:
        groups = {"": list(df.columns)}
    elif not isinstance(groups, dict):
        groups = {", ".join(g): list(g) for g in groups}
    unknown = sorted({t for terms in groups.values() for t in terms} - set(df.columns))
    if unknown and len(df):
        raise KeyError(f"no loss term(s) {unknown} in the history; it has {list(df.columns)}")
    if smooth is None:
        smooth = max(1, len(df) // 50)
    n = len(groups)
    fig, axes = plt.subplots(1, n, figsize=figsize or (5.5 * n, 3.6), squeeze=False)
    for ax, (title, terms) in zip(axes[0], groups.items()):
        _loss_panel(ax, df, title, terms, smooth, logy=logy)
    fig.tight_layout()
    return fig


def _loss_panel(ax, df: pd.DataFrame, title: str, terms, smooth: int, logy: bool = False, fontsize=None) -> None:
    """One panel of loss curves: each term faint, with its moving average over ``smooth`` steps on top."""
    for i, term in enumerate(terms):
        if term not in df:
            continue
        color = f"C{i}"
        y = df[term]
        if smooth > 1:
            ax.plot(df.index, y, color=color, alpha=0.25, linewidth=0.8)
            ax.plot(df.index, smooth_series(y, smooth), color=color, label=term)
        else:
            ax.plot(df.index, y, color=color, label=term)
    ax.set_title(title, fontsize=fontsize)
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(df) and any(t in df for t in terms):
        ax.legend(fontsize=fontsize and fontsize - 2)


def _as_frames(frames) -> list[np.ndarray]:
    out = []
    for f in frames:
        if isinstance(f, torch.Tensor) and f.dim() == 4:  # a batch: make it a grid
            f = make_grid(f)
        out.append(np.asarray(f, dtype=np.uint8))
    if not out:
        raise ValueError("no frames to animate: train for a few steps with a Snapshots callback first")
    return out


def save_gif(frames, path, duration_ms: int = 200, final_pause_ms: int = 1500) -> Path:
    """Write frames (uint8 ``(H, W, 3)`` pictures, or batches of images) as a looping GIF.

    The last frame stays up for ``final_pause_ms`` so the result can be seen before the loop.
    """
    from PIL import Image

    pictures = [Image.fromarray(f) for f in _as_frames(frames)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [duration_ms] * (len(pictures) - 1) + [max(duration_ms, final_pause_ms)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return path


def animate(frames, labels=None, interval_ms: int = 200, figsize=(6, 6)):
    """An animation of the frames for a notebook (HTML with play controls).

    ``labels`` (one per frame, e.g. the training steps) are shown as titles.
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation
    from IPython.display import HTML

    frames = _as_frames(frames)
    fig, ax = plt.subplots(figsize=figsize)
    ax.set_axis_off()
    im = ax.imshow(frames[0])
    title = ax.set_title("")

    def draw(i):
        im.set_data(frames[i])
        if labels is not None:
            title.set_text(f"step {labels[i]}" if isinstance(labels[i], (int, np.integer)) else str(labels[i]))
        return (im, title)

    anim = animation.FuncAnimation(fig, draw, frames=len(frames), interval=interval_ms, blit=False)
    html = HTML(anim.to_jshtml(default_mode="once"))
    plt.close(fig)
    return html


def show_image_rows(rows, row_names=None, col_titles=None, title: str | None = None, size: float = 1.1):
    """Rows of images (each ``(n, 3, H, W)``, [-1, 1] or uint8) as one figure with a name per row; returns it."""
    import matplotlib.pyplot as plt

    rows = [torch.as_tensor(r) for r in rows]
    n = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n + 1.2, size * len(rows) + (0.4 if title else 0.1)),
                             squeeze=False)
    for i, r in enumerate(rows):
        for j in range(n):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(r):
                ax.imshow(denormalize(r[j]).permute(1, 2, 0).numpy())
            if i == 0 and col_titles is not None and j < len(col_titles):
                ax.set_title(str(col_titles[j]), fontsize=8)
        if row_names is not None:
            axes[i][0].set_ylabel(str(row_names[i]), fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- watching a run learn


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a figure can be redrawn in place); False in a terminal or a script."""
    import sys

    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover -- ipykernel brings IPython
        return False
    return get_ipython() is not None


class LiveView:
    """One figure, redrawn in place while a notebook trains: the newest progress grid beside the loss curves.

    Used as a step callback (``trainer.every(1, view)``): at the first step after each ``interval``
    seconds it draws the latest grid of the run's fixed test inputs (the snapshot the run saves every
    ``sample_every`` steps, so nothing is run through the model for it and training is the same with
    or without the view) and every loss term so far, one panel per group. ``close()`` draws the last
    state. ``display(fig, display_id=True)`` and ``handle.update`` replace the picture instead of
    adding one per redraw; a headless run never makes one (:func:`in_notebook`).
    """

    def __init__(self, snapshots, history, groups=None, interval: float = 30.0, title: str = ""):
        import time

        self.snapshots, self.history, self.groups = snapshots, history, groups
        self.interval, self.title = float(interval), title
        self.handle = None
        self._clock = time.monotonic
        self._last = self._clock()

    def __call__(self, trainer=None) -> None:
        if self._clock() - self._last >= self.interval:
            self.draw(getattr(trainer, "step", None))

    def figure(self, step=None):
        """The figure of the run as it is now (also what :meth:`draw` shows)."""
        import matplotlib.pyplot as plt
        from PIL import Image

        df = self.history.to_frame()
        groups = self.groups or {"losses": list(df.columns)}
        groups = {k: [t for t in v if t in df] for k, v in groups.items()}
        groups = {k: v for k, v in groups.items() if v} or {"losses": list(df.columns)}
        paths = self.snapshots.paths() if self.snapshots is not None else []
        n = len(groups) + (1 if paths else 0)
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
        axes = list(axes[0])
        if paths:
            ax = axes.pop(0)
            with Image.open(paths[-1]) as im:
                ax.imshow(np.asarray(im.convert("RGB")))
            saved_at = paths[-1].stem.rpartition("_")[2]
            ax.set_title(f"progress grid, step {int(saved_at) if saved_at.isdigit() else saved_at}", fontsize=9)
            ax.axis("off")
        for ax, (name, terms) in zip(axes, groups.items()):
            _loss_panel(ax, df, name, terms, max(1, len(df) // 50), fontsize=9)
        label = f"{self.title}: " if self.title else ""
        fig.suptitle(f"{label}step {step if step is not None else (df.index[-1] if len(df) else 0)}", fontsize=10)
        fig.tight_layout()
        return fig

    def draw(self, step=None) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig = self.figure(step)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)
        self._last = self._clock()

    def close(self, step=None) -> None:
        self.draw(step)
