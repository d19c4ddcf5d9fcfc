"""Image grids, loss plots, GIFs and animations."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from helpers.plots import animate, denormalize, make_grid, plot_losses, save_gif, show_grid, show_real_fake  # noqa: E402
from helpers.training import LossHistory  # noqa: E402


def test_denormalize_and_grid():
    x = torch.tensor([-1.0, 0.0, 1.0, 3.0])
    assert denormalize(x).tolist() == [0.0, 0.5, 1.0, 1.0]
    imgs = torch.full((5, 3, 4, 6), -1.0)  # black images
    grid = make_grid(imgs, nrow=3, padding=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * (4 + 2) + 2, 3 * (6 + 2) + 2, 3)
    assert grid[2, 2].tolist() == [0, 0, 0] and grid[0, 0].tolist() == [255, 255, 255]
    u8 = torch.full((2, 3, 4, 4), 200, dtype=torch.uint8)
    assert make_grid(u8, padding=0).shape == (4, 8, 3) and make_grid(u8, padding=0)[0, 0, 0] == 200


def _history():
    h = LossHistory()
    for s in range(1, 101):
        h.record(s, loss_D=1.0 + np.sin(s), loss_G=2.0, D_x=0.7, D_G_z=0.3)
    return h


def test_plot_losses_one_panel_per_group():
    fig = plot_losses(_history(), groups={"losses": ["loss_D", "loss_G"], "D outputs": ["D_x", "D_G_z"]}, smooth=10)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "losses"
    assert len(fig.axes[0].lines) == 4  # raw and smoothed for each term
    assert len(_history().plot().axes) == 1
    with pytest.raises(KeyError, match="loss_X"):
        plot_losses(_history(), groups=[["loss_X"]])


def test_show_grid_and_real_fake():
    imgs = torch.rand(4, 3, 8, 8) * 2 - 1
    assert len(show_grid(imgs, nrow=2, title="t").axes) == 1
    assert len(show_real_fake(imgs, imgs).axes) == 2


def test_save_gif_and_animate(tmp_path):
    frames = [np.full((10, 12, 3), v, dtype=np.uint8) for v in (0, 120, 250)]
    path = save_gif(frames, tmp_path / "sub" / "progress.gif")
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 3 and im.size == (12, 10)
    html = animate([torch.rand(4, 3, 8, 8) * 2 - 1 for _ in range(2)], labels=[0, 50])
    assert "<script" in html.data and "anim" in html.data.lower()
    with pytest.raises(ValueError, match="no frames"):
        save_gif([], tmp_path / "x.gif")


def test_save_image_is_atomic(tmp_path, monkeypatch):
    from helpers.plots import save_image

    grid = np.full((6, 8, 3), 77, dtype=np.uint8)
    path = save_image(grid, tmp_path / "a" / "step_1.png")
    assert np.asarray(Image.open(path)).tolist() == grid.tolist() and list(path.parent.iterdir()) == [path]

    def broken_save(self, fp, *args, **kwargs):  # the disk fills up half-way through writing
        open(fp, "wb").write(b"\x89PNG half")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="No space"):
        save_image(np.zeros((6, 8, 3), dtype=np.uint8), path)
    monkeypatch.undo()
    assert np.asarray(Image.open(path)).tolist() == grid.tolist()  # the old picture is intact
    assert list(path.parent.iterdir()) == [path]  # and no temporary file is left behind
