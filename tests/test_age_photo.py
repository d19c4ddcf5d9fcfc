"""Aging a photo with every trained model (helpers.age_photo): loading, results, CLI, messages.

The models here are tiny and untrained, written straight into a temporary RUNS_DIR the way
training leaves them (CycleGAN's ``generators.pt`` or a checkpoint; the age GAN's checkpoint):
what is tested is the plumbing, not the aging.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")
pytest.importorskip("skimage")

from helpers import age_photo, config, faces, weights  # noqa: E402
from helpers.training import Checkpointer  # noqa: E402


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """An empty RUNS_DIR, and no shipped weights (tests/test_pretrained.py covers those)."""
    d = tmp_path / "runs"
    d.mkdir()
    monkeypatch.setattr(config, "RUNS_DIR", d)
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "no-weights")
    return d


def _run_dir(name: str):
    return age_photo.AGERS[name].run_dirs()[-1]  # the toy-face folder


def _tiny_cyclegan():
    from helpers.cyclegan import CycleGAN

    return CycleGAN(image_size=16, ngf=4, ndf=4, n_blocks=1, n_layers_D=2)


def _write_cyclegan(as_checkpoint: bool = False):
    from helpers.cyclegan import save_generators

    model = _tiny_cyclegan()
    run_dir = _run_dir("cyclegan")
    if as_checkpoint:
        Checkpointer(run_dir).save({"model": "cyclegan", "step": 7,
                                    "config": {**model.config, "young": "15-30", "old": "50+", "batch_size": 4},
                                    "networks": {k: v.state_dict() for k, v in model.networks.items()}}, 7)
    else:
        save_generators(model, run_dir / "generators.pt")
    return run_dir


def _write_agegan(edges=(0, 30, 60)):
    from helpers.agegan import AgeGAN

    gan = AgeGAN(image_size=16, ngf=4, ndf=4, n_enc_blocks=1, n_dec_blocks=1, style_dim=8,
                 n_layers_D=2, group_edges=tuple(edges))
    run_dir = _run_dir("agegan")
    Checkpointer(run_dir).save({"model": "agegan", "step": 3, "config": dict(gan.config),
                                "networks": {k: v.state_dict() for k, v in gan.networks.items()}}, 3)
    return run_dir


@pytest.fixture(scope="module")
def crop():
    return faces.find_face(faces.example_photo(), verbose=False).crop


# --------------------------------------------------------------------------- no model yet


def test_no_trained_model_says_which_notebook(runs):
    with pytest.raises(age_photo.NoTrainedModel) as err:
        age_photo.load_ager("cyclegan")
    msg = str(err.value)
    assert "03_cyclegan.ipynb" in msg and "python -m helpers.train cyclegan" in msg and str(runs) in msg
    with pytest.raises(age_photo.NoTrainedModel, match="06_age_modulated_gan.ipynb"):
        age_photo.load_ager("agegan")
    with pytest.raises(age_photo.NoTrainedModel, match="05_encoder.ipynb"):
        age_photo.load_ager("cdcgan")
    with pytest.raises(age_photo.NoTrainedModel, match="choose from"):
        age_photo.load_ager("stylegan")


def test_available_agers_lists_what_is_missing(runs, capsys):
    assert age_photo.available_agers() == {}
    out = capsys.readouterr().out
    assert out.count("[--]") == len(age_photo.AGERS)


def test_cli_without_models_explains_and_writes_nothing(runs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "face.png").write_bytes(b"an earlier result")
    assert age_photo.main(["--example", "--out", str(out)]) == 3
    captured = capsys.readouterr()
    assert "Found 1 face" in captured.out and "No trained" in captured.out and "Traceback" not in captured.err
    assert "nothing was written" in captured.err
    assert [p.name for p in out.iterdir()] == ["face.png"] and (out / "face.png").read_bytes() == b"an earlier result"


# --------------------------------------------------------------------------- with models


def test_cyclegan_ages_both_ways(runs, crop):
    _write_cyclegan()
    ager = age_photo.load_ager("cyclegan")
    assert ager.image_size == 16 and "generators.pt" in repr(ager)
    aged = ager.age(crop)
    assert aged.labels == ["younger", "older"]
    assert len(aged.images) == 2 and all(im.shape == (200, 200, 3) and im.dtype == np.uint8 for im in aged.images)
    assert np.array_equal(aged.face, crop)
    frames, labels = ager.series(crop)
    assert len(frames) == 3 and labels[1] == "your photo"
    assert aged.strip().shape[1] > 3 * 200


def test_cyclegan_from_a_checkpoint_only(runs, crop):
    _write_cyclegan(as_checkpoint=True)
    ager = age_photo.load_ager("cyclegan")
    assert ager.steps == 7 and "ckpt_" in repr(ager)
    assert ager.age(crop).labels == ["younger (15-30)", "older (50+)"]


def test_agegan_every_group_and_smooth_series(runs, crop):
    _write_agegan((0, 30, 60))
    ager = age_photo.load_ager("agegan")
    aged = ager.age(crop, size=64)
    assert aged.labels == ["0-29", "30-59", "60+"]
    assert len(aged.images) == 3 and aged.images[0].shape == (64, 64, 3)
    frames, labels = ager.series(crop, frames_between=2, size=64)
    assert len(frames) == 2 * 3 + 1 and labels[0] == "0-29" and labels[-1] == "60+" and ".." in labels[1]
    # The series passes through the pure groups: its frames 0, 3 and 6 are the groups' faces.
    for k, i in enumerate((0, 3, 6)):
        assert np.abs(frames[i].astype(int) - aged.images[k].astype(int)).max() <= 1


def test_explicit_run_dir(runs, tmp_path, crop):
    with pytest.raises(age_photo.NoTrainedModel, match="elsewhere"):
        age_photo.load_ager("agegan", run_dir=tmp_path / "elsewhere")
    src = _write_agegan()
    moved = tmp_path / "elsewhere"
    src.rename(moved)
    assert age_photo.load_ager("agegan", run_dir=moved).run_dir == moved


def test_cli_ages_the_example_with_every_model(runs, tmp_path, capsys):
    _write_cyclegan()
    _write_agegan()
    out = tmp_path / "out"
    assert age_photo.main(["--example", "--model", "all", "--out", str(out), "--frames-between", "1"]) == 0
    text = capsys.readouterr().out
    assert "No trained encoder + conditional DCGAN yet" in text  # the missing one is named, not a crash
    for name in ("face.png", "faces_found.png", "cyclegan.png", "agegan.png", "cyclegan.gif", "agegan.gif",
                 "all_models.gif"):
        assert (out / name).is_file(), name
    assert len(list((out / "agegan").glob("*.png"))) == 3
    gif = Image.open(out / "agegan.gif")
    assert gif.n_frames == 2 * (2 * 2 + 1) - 2  # 5 ages, forth and back
    # --strength: the age GAN's change put on in part; the faces move less far from the input
    weak = tmp_path / "weak"
    assert age_photo.main(["--example", "--model", "agegan", "--out", str(weak), "--strength", "0.25",
                           "--frames-between", "1"]) == 0
    assert "agegan: at strength 0.25" in capsys.readouterr().out
    first = Image.open(next((out / "agegan").glob("*.png")))
    face = np.asarray(Image.open(out / "face.png").convert("RGB").resize(first.size)).astype(float)
    for png in sorted((out / "agegan").glob("*.png")):
        full, part = (np.abs(np.asarray(Image.open(d / "agegan" / png.name)).astype(float) - face).mean()
                      for d in (out, weak))
        assert part < 0.6 * full, (png.name, part, full)


def test_cli_bad_inputs_end_with_a_message(runs, tmp_path, capsys):
    notes = tmp_path / "selfie.jpg"
    notes.write_text("not a photo at all")
    assert age_photo.main([str(notes), "--out", str(tmp_path / "o")]) == 1
    assert "selfie.jpg" in capsys.readouterr().err
    blank = tmp_path / "wall.png"
    Image.new("RGB", (120, 90), (200, 200, 200)).save(blank)
    assert age_photo.main([str(blank), "--out", str(tmp_path / "o")]) == 1
    assert "No face" in capsys.readouterr().err
    for usage in (["--out", str(tmp_path / "o")], ["--example", "--model", "nope"]):  # argparse: exit 2, on stderr
        with pytest.raises(SystemExit) as stop:
            age_photo.main(usage)
        assert stop.value.code == 2
    assert "unknown model(s) nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        age_photo.main(["--example", "--strength", "5"])
    assert stop.value.code == 2 and "strength must be a number in (0, 2]" in capsys.readouterr().err


def test_get_face_falls_back_to_the_example(tmp_path, capsys):
    notes = tmp_path / "me.jpg"
    notes.write_text("hello")
    found = age_photo.get_face(notes, verbose=False)
    assert found.crop.shape == (200, 200, 3)
    assert "Cannot use this photo" in capsys.readouterr().out
    assert age_photo.get_face(notes, fallback=False, verbose=False) is None


def test_slider_and_side_by_side(runs, crop):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _write_cyclegan()
    _write_agegan()
    agers = age_photo.available_agers(verbose=False)
    assert set(agers) == {"cyclegan", "agegan"}
    results = age_photo.age_all(crop, agers, size=64)
    fig = age_photo.show_aged(results)
    assert len(fig.axes) == 2 * 4
    plt.close(fig)
    widget = age_photo.age_slider(crop, agers, frames_between=1, size=64)
    slider, image = widget.children[0].children[0], widget.children[1]
    first = image.value
    slider.value = slider.max
    assert image.value != first
    empty = age_photo.age_slider(crop, {})
    assert "No trained model" in empty.value


def test_the_change_goes_onto_the_full_resolution_crop():
    """A model that changes nothing gives back the sharp crop, not its blurred 16-px copy; a change shows through."""
    import torch

    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)  # all fine detail
    x = age_photo._to_tensor(face, 16)
    same = age_photo.apply_change(face, x, x.float() / 127.5 - 1, 256)[0]
    assert np.abs(same.astype(int) - face.astype(int)).max() <= 1  # every pixel of detail kept
    raw = age_photo._from_tensor(x.float() / 127.5 - 1, 256)[0]
    assert np.abs(raw.astype(int) - face.astype(int)).mean() > 30  # the raw output at 256 px is a blur
    brighter = age_photo.apply_change(face, x, (x.float() / 127.5 - 1 + 0.2).clamp(-1, 1), 256)[0]
    mid = (face > 40) & (face < 215)
    assert abs((brighter.astype(int) - face.astype(int))[mid].mean() - 25.5) < 3  # +0.2 on [-1, 1] = +25.5 levels


def test_cli_puts_the_aged_face_back_into_the_photo(runs, tmp_path):
    _write_cyclegan()
    out = tmp_path / "out"
    assert age_photo.main(["--example", "--model", "cyclegan", "--out", str(out), "--size", "128"]) == 0
    assert (out / "cyclegan_in_photo.png").is_file()
    assert Image.open(out / "cyclegan" / "00_younger.png").size == (128, 128)


# --------------------------------------------------------------------------- outputs and bad input (issue 22)


def _fresh_process(*args: str, cwd=None):
    """``python -X importtime -m helpers.age_photo ARGS`` in a fresh process; ``(completed, imported module names)``."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "helpers.age_photo", *args], cwd=cwd or root,
                          capture_output=True, text=True)
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc, imported


def test_help_and_a_bad_out_answer_before_torch_is_imported(tmp_path):
    proc, imported = _fresh_process("--help")
    assert proc.returncode == 0 and "exit codes" in proc.stdout
    assert "torch" not in imported and "cv2" not in imported
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for bad in ("/proc/x", str(a_file / "results"), str(a_file)):
        proc, imported = _fresh_process("--example", "--out", bad)
        assert proc.returncode == 2, (bad, proc.stderr)
        err = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
        assert len(err) == 1 and err[0].startswith("error: --out") and "give a folder" in err[0], err
        assert "Traceback" not in proc.stderr and "torch" not in imported
    assert a_file.read_text() == "x"


def test_the_photo_is_never_overwritten_by_its_own_results(runs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    photo = out / "face.png"
    Image.fromarray(faces.example_photo()).save(photo)
    before = photo.read_bytes()
    assert age_photo.main([str(photo), "--out", str(out)]) == 2
    assert "overwritten" in capsys.readouterr().err and photo.read_bytes() == before


def test_a_failed_run_keeps_the_earlier_results(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "face.png").write_bytes(b"earlier")
    with pytest.raises(RuntimeError):
        with age_photo.staged_folder(out) as stage:
            (stage / "face.png").write_bytes(b"half-done")
            raise RuntimeError("interrupted")
    assert [p.name for p in out.iterdir()] == ["face.png"] and (out / "face.png").read_bytes() == b"earlier"
    with age_photo.staged_folder(out) as stage:
        (stage / "face.png").write_bytes(b"new")
        (stage / "agegan").mkdir()
        (stage / "agegan" / "00_x.png").write_bytes(b"n")
    assert sorted(p.name for p in out.iterdir()) == ["agegan", "face.png"] and (out / "face.png").read_bytes() == b"new"


def test_gray_photo_gives_gray_results_and_rgba_says_so(runs, tmp_path, capsys):
    _write_agegan()
    gray = faces.to_grayscale(faces.example_photo())
    path = tmp_path / "gray.jpg"
    Image.fromarray(gray[..., 0]).save(path, quality=90)  # a real one-channel JPEG
    out = tmp_path / "out"
    assert age_photo.main([str(path), "--model", "agegan", "--out", str(out), "--frames-between", "0"]) == 0
    assert "grayscale" in capsys.readouterr().out
    for png in [out / "agegan.png", *sorted((out / "agegan").glob("*.png")), out / "agegan_in_photo.png"]:
        assert faces.is_grayscale(np.asarray(Image.open(png).convert("RGB"))), png
    # the same photo in colour comes back in colour (the untrained model tints it): the check can fail
    colour = faces.find_face(faces.example_photo(), verbose=False).crop
    aged = age_photo.load_ager("agegan").age(colour)
    assert not faces.is_grayscale(aged.images[0])
    # transparency is flattened onto white, and the run says so
    rgba = np.dstack([faces.example_photo(), np.full(gray.shape[:2], 255, np.uint8)])
    rgba[:40, :40, 3] = 0
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert age_photo.main([str(path), "--model", "agegan", "--out", str(tmp_path / "o2"), "--frames-between", "0"]) == 0
    assert "transparent areas" in capsys.readouterr().out


def test_the_crop_size_in_the_message_is_the_size_saved(runs, tmp_path, capsys):
    import cv2

    _write_cyclegan()
    big = cv2.resize(faces.example_photo(), (2000, 2000), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=90)
    out = tmp_path / "out"
    assert age_photo.main([str(path), "--model", "cyclegan", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    side = Image.open(out / "face.png").size[0]
    assert side > 200 and f"cropped it to {side}x{side}" in text
