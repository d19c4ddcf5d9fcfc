"""The prepared GPU check (``make gpu-check``): its smoke path end to end on a CPU, and its pieces.

The smoke run is one subprocess (``SMOKE=1``, one thread, its runs in a temporary folder) on a
handful of real faces when the UTKFace sample is here and on the toy faces otherwise; the tests
then read what it wrote. The pieces (sharded float16 safetensors, the FLOP count, the T4 estimate,
the output limits, the usage errors) are tested in-process.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import agegan, config, cyclegan
from helpers import gpu_check as gc

# one thread (see conftest.py); `sample`: the smoke run trains on the real faces when they are here and on
# the toy faces in a fresh clone, and the tests below say what they expect in both cases
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.sample]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, request):
    """Run ``python -m helpers.gpu_check`` in smoke mode once; ``(completed process, out folder, faces used)``."""
    try:
        faces = request.getfixturevalue("real_utkface_dir")
    except pytest.skip.Exception:  # no real sample here: the smoke path falls back to the toy faces
        faces = None
    tmp = tmp_path_factory.mktemp("gpu-check")
    out = tmp / "out"
    env = {**os.environ, "SMOKE": "1", "FACEAGING_RUNS": str(tmp / "runs"), "PYTHONPATH": str(ROOT),
           "OUT": str(tmp / "not-this-one")}
    cmd = [sys.executable, "-m", "helpers.gpu_check", "--faces", str(faces or tmp / "no-faces-here"),
           "--out", str(out), "--threads", "1", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return proc, out, faces


def _results(out: Path) -> dict:
    return json.loads((out / "gpu_check.json").read_text())


# --------------------------------------------------------------------------- the smoke run


def test_smoke_run_succeeds_and_prints_the_table_last(smoke_run):
    proc, out, _ = smoke_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    header = max(i for i, ln in enumerate(lines) if ln.startswith("| step"))
    assert header > max(i for i, ln in enumerate(lines) if ln.startswith("=== "))  # after every phase
    table = lines[header:]
    assert all(ln.startswith("|") for ln in table)  # nothing printed after the table
    steps = {ln.split("|")[1].strip() for ln in table[2:]}
    assert {"1 speed", "2 CycleGAN", "2 AgeGAN", "2 evaluation", "3 Colab"} <= steps
    assert "FAILED" not in "\n".join(table)
    assert _results(out)["failed"] == []
    assert not (Path(out).parent / "not-this-one").exists()  # --out wins over $OUT


def test_smoke_run_uses_the_faces_it_was_given(smoke_run):
    _, out, faces = smoke_run
    env = _results(out)["environment"]
    assert env["smoke"] is True
    assert env["source"] == ("utkface" if faces else "toy")
    assert 0 < env["faces"] <= config.DATA.max_images


def test_speed_numbers_are_sane(smoke_run):
    _, out, _ = smoke_run
    speed = _results(out)["speed"]
    assert speed["plain_pairs_per_s"] > 0
    assert speed["tries"] and all(t["fast_pairs_per_s"] > 0 for t in speed["tries"])
    assert speed["flops_per_pair"] > 0
    assert speed["matmul"]["flops_per_s"] > 0 and speed["matmul"]["dtype"] == "float32"  # a CPU
    assert speed["speedup"] == pytest.approx(speed["best"]["fast_pairs_per_s"] / speed["plain_pairs_per_s"])
    assert 0 < speed["share_of_matmul"] < 1


def test_training_wrote_grids_and_stopped(smoke_run):
    _, out, _ = smoke_run
    res = _results(out)
    for name in ("cyclegan", "agegan"):
        assert res[name]["steps"] >= 1
        assert res[name]["stopped_by"] in ("epochs", "clock")
        assert all(math.isfinite(v) for v in res[name]["final_losses"].values())
        with Image.open(out / f"{name}_grid.png") as im:
            assert im.width > 200 and im.height > 200
            assert np.unique(np.asarray(im.convert("L"))).size > 10  # a picture, not a blank


def test_safetensors_load_back_as_torch_generators(smoke_run):
    _, out, _ = smoke_run
    x = torch.rand(2, 3, config.CYCLEGAN.image_size, config.CYCLEGAN.image_size) * 2 - 1
    for direction in ("G_AB", "G_BA"):
        paths = sorted(out.glob(f"cyclegan_{direction}*.safetensors"))
        assert paths
        state, meta = gc.load_fp16(paths)
        assert meta["model"] == "cyclegan" and meta["network"] == direction and int(meta["steps"]) >= 1
        assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
        G = gc.load_generator(paths)
        assert isinstance(G, cyclegan.ResnetGenerator) and not G.training
        with torch.no_grad():
            y = G(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
    G = gc.load_generator(sorted(out.glob("agegan_G*.safetensors")))
    assert isinstance(G, agegan.AgeGenerator) and len(G.group_edges) == len(config.AGEGAN.group_edges)
    size = config.AGEGAN.image_size
    y = agegan.translate(G, torch.rand(2, 3, size, size) * 2 - 1, 3)
    assert y.shape == (2, 3, size, size) and torch.isfinite(y).all()


def test_outputs_fit_what_a_device_run_brings_back(smoke_run):
    _, out, _ = smoke_run
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 4 < len(files) <= gc.MAX_FILES
    assert all(p.stat().st_size <= gc.MAX_FILE_BYTES for p in files)
    assert gc.check_outputs(out) == []


def test_evaluation_rows(smoke_run):
    _, out, faces = smoke_run
    rows = [r for r in _results(out)["evaluation"]["rows"] if r["status"] == "ok"]
    # Each age GAN is used at its setting's strength, and its row names it when it is not 1: the real-face
    # setting (the sample is here) at 0.85, the toy setting (a fresh clone) at the whole change.
    setting = config.AGEGAN_REAL if faces else config.AGEGAN
    agegan_row = "AgeGAN (age-modulated)" + (f", strength {setting.strength:g}" if setting.strength != 1 else "")
    assert [r["model"] for r in rows] == ["CycleGAN (G_AB)", "CycleGAN (G_BA)", agegan_row]
    assert all(0 <= r["age_accuracy"] <= 100 and r["faces"] > 0 for r in rows)


def test_colab_estimate(smoke_run):
    _, out, _ = smoke_run
    est = json.loads((out / "colab_estimate.json").read_text())
    assert "65 TFLOP/s" in est["assumption"]
    rows = {r["model"]: r for r in est["notebooks"]}
    assert set(rows) == set(gc.NOTEBOOK_MODELS)
    for r in rows.values():
        assert "error" not in r, r
        assert r["flops_per_step"] > 0 and r["steps_per_s"] > 0 and r["steps"] > 0
        assert r["t4_minutes"] > 0 and 0 < r["utilisation"] < 1
    assert est["total_t4_minutes"] == pytest.approx(sum(r["t4_minutes"] for r in rows.values()))
    assert rows["cyclegan"]["notebook"] == "03_cyclegan.ipynb"


# --------------------------------------------------------------------------- the pieces


def test_float16_shards_round_trip(tmp_path):
    torch.manual_seed(0)
    net = cyclegan.make_generator("resnet", ngf=8, n_blocks=2)
    state = net.state_dict()
    data = sum(v.numel() * 2 for v in state.values())
    cap = data // 3  # forces several shards
    meta = {"model": "cyclegan", "network": "G_AB", "config": json.dumps({"generator": "resnet", "ngf": 8,
                                                                          "n_blocks": 2, "residual": False})}
    paths = gc.save_fp16(state, tmp_path / "g", meta, max_bytes=cap)
    assert len(paths) >= 3 and len(paths) == gc._shard_count(state, meta, cap)
    assert all(p.stat().st_size <= cap for p in paths)
    assert paths[0].name == f"g-00001-of-{len(paths):05d}.safetensors"
    back, got = gc.load_fp16(paths)
    assert got["network"] == "G_AB" and got["shards"] == str(len(paths))
    assert set(back) == set(state)
    for k, v in state.items():
        assert torch.equal(back[k], v.half())
    G = gc.load_generator(paths)
    for k, v in G.state_dict().items():
        assert torch.allclose(v, state[k], atol=1e-3 * max(1.0, state[k].abs().max().item()))
    with pytest.raises(ValueError, match="shards"):
        gc.load_fp16(paths[:-1])
    one = gc.save_fp16(state, tmp_path / "whole", meta)
    assert [p.name for p in one] == ["whole.safetensors"]


def test_a_tensor_bigger_than_a_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="more than a file may hold"):
        gc.save_fp16({"w": torch.zeros(1000)}, tmp_path / "big", {}, max_bytes=1000)


def test_export_leaves_out_what_does_not_fit(tmp_path):
    nets = {"G_AB": cyclegan.make_generator("resnet", 8, 2), "G_BA": cyclegan.make_generator("resnet", 8, 2)}
    files, left = gc.export_generators(nets, lambda n: tmp_path / n, "cyclegan", {"ngf": 8}, {"steps": 1}, 1)
    assert len(files["G_AB"]) == 1 and left == 0
    assert isinstance(files["G_BA"], str) and "do not fit" in files["G_BA"]
    assert not list(tmp_path.glob("G_BA*"))


def test_flop_count_of_a_convolution_and_of_a_cyclegan_step():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert gc.count_flops(lambda: conv(torch.rand(2, 3, 16, 16))) == 2 * 2 * 8 * 3 * 9 * 16 * 16
    s = cyclegan.default_settings("cpu")  # what cyclegan_flops_per_pair counts on a CPU
    x = torch.rand(1, 3, s.image_size, s.image_size)
    g = gc.count_flops(lambda: cyclegan.make_generator(s.generator, s.ngf, s.n_blocks, s.residual)(x))
    d = gc.count_flops(lambda: cyclegan.PatchDiscriminator(s.ndf, s.n_layers_D)(x))
    per_pair = gc.cyclegan_flops_per_pair("cpu", batch=2)
    # Per pair: there and back both ways (4 generator passes; 6 with the identity loss), every one with a
    # backward pass (about twice the forward); the discriminators' 6 passes and their backward come on top.
    passes = 6 if s.lambda_identity > 0 else 4
    assert 3 * passes * g < per_pair <= 3 * passes * g + 3 * 6 * d


def test_t4_estimate_arithmetic():
    est = gc.t4_minutes(flops_per_step=1e12, steps_per_s=10, total_steps=600, ref_flops_per_s=1e14)
    assert est["utilisation"] == pytest.approx(0.1)
    assert est["minutes_here"] == pytest.approx(1.0)
    assert est["t4_minutes"] == pytest.approx(600 * 1e12 / (0.1 * 65e12) / 60)


def test_fit_epochs():
    assert gc.fit_epochs(100, steps_per_s=10, batches_per_epoch=85, most=20) == 10  # 850 steps in 100 s at 85%
    assert gc.fit_epochs(100, steps_per_s=10, batches_per_epoch=85, most=4) == 4
    assert gc.fit_epochs(1, steps_per_s=10, batches_per_epoch=85, most=20) == 1
    assert gc.fit_epochs(100, steps_per_s=0, batches_per_epoch=85, most=20) == 1


def test_output_limits(tmp_path):
    for i in range(gc.MAX_FILES + 1):
        (tmp_path / f"f{i}.txt").write_text("x")
    (tmp_path / "big.bin").write_bytes(b"\0" * (gc.MAX_FILE_BYTES + 1))
    problems = gc.check_outputs(tmp_path)
    assert any("more than the 8" in p for p in problems) and any("big.bin" in p for p in problems)


def test_usage_errors_are_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(gc.UsageError, match="GPU_CHECK_FACES"):
        gc.resolve_faces(str(tmp_path / "missing"), smoke=False, max_images=None)
    if not torch.cuda.is_available():
        monkeypatch.setattr(config, "SMOKE", False)
        assert gc.main(["--device", "cpu", "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert "SMOKE=1" in err and "Traceback" not in err
        assert not (tmp_path / "out").exists()
