"""Shipped weights: export, load back, refuse bad files, and age a photo with them when there is no run."""

import pytest
import torch

from helpers import age_photo, config, faces, pretrained, weights
from helpers.cyclegan import CycleGAN, save_generators
from helpers.training import Checkpointer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def cyclegan_run(tmp_path):
    torch.manual_seed(0)
    model = CycleGAN(image_size=16, ngf=4, ndf=4, n_blocks=1, n_layers_D=2)
    run = tmp_path / "run"
    Checkpointer(run).save({"model": "cyclegan", "step": 5, "config": {**model.config, "data": "utkface",
                                                                       "young": "15-30", "old": "50+"},
                            "networks": {k: v.state_dict() for k, v in model.networks.items()}}, 5)
    save_generators(model, run / "generators.pt")
    return model, run


def test_export_and_load_round_trip(cyclegan_run, tmp_path):
    model, run = cyclegan_run
    path = pretrained.export("cyclegan", run, tmp_path / "w" / "cyclegan.safetensors")
    assert path.stat().st_size < 8 * 2**20
    gan, info = pretrained.load("cyclegan", path=path)
    assert info["young"] == "15-30" and info["steps"] == 5 and info["data"] == "utkface"
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    # float16 storage: the same translation to within fp16 rounding
    assert torch.allclose(gan.translate(x, "A2B"), model.translate(x, "A2B"), atol=2e-2)
    tensors, _, _ = pretrained.read("cyclegan", path)
    assert set(tensors) == {"G_AB", "G_BA"}


def test_bad_files_get_clear_errors(cyclegan_run, tmp_path):
    _, run = cyclegan_run
    with pytest.raises(pretrained.WeightsError, match="no shipped weights at .*train the model yourself"):
        pretrained.read("cyclegan", tmp_path / "nothing.safetensors")
    broken = tmp_path / "cyclegan.safetensors"
    broken.write_bytes(b"\x00\x01 not a weights file")
    with pytest.raises(pretrained.WeightsError, match="not a readable safetensors file"):
        pretrained.read("cyclegan", broken)
    good = pretrained.export("cyclegan", run, tmp_path / "good.safetensors")
    with pytest.raises(pretrained.WeightsError, match="holds weights of model 'cyclegan', not 'agegan'"):
        pretrained.read("agegan", good)
    assert pretrained.main(["check", "agegan"]) in (0, 3)  # whatever ships, no traceback


def test_photo_aged_with_shipped_weights_when_no_run(cyclegan_run, tmp_path, monkeypatch):
    _, run = cyclegan_run
    monkeypatch.setattr(config, "RUNS_DIR", tmp_path / "no-runs")
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")
    with pytest.raises(age_photo.NoTrainedModel):
        age_photo.load_ager("cyclegan")
    pretrained.export("cyclegan", run)
    ager = age_photo.load_ager("cyclegan")
    assert "shipped" in repr(ager) and ager.trained_on == "utkface" and not ager.warning
    crop = faces.find_face(faces.example_photo(), verbose=False).crop
    aged = ager.age(crop, size=32)
    assert len(aged.images) == 2 and aged.images[0].shape == (32, 32, 3)
    (tmp_path / "weights" / "cyclegan.safetensors").write_bytes(b"garbage")
    with pytest.raises(age_photo.NoTrainedModel, match="not a readable safetensors file"):
        age_photo.load_ager("cyclegan")


def test_toy_trained_models_carry_a_warning(cyclegan_run, monkeypatch, tmp_path):
    model, _ = cyclegan_run
    monkeypatch.setattr(config, "RUNS_DIR", tmp_path / "runs")
    run = age_photo.AGERS["cyclegan"].run_dirs()[-1]  # the toy-face folder
    save_generators(model, run / "generators.pt")
    ager = age_photo.load_ager("cyclegan")
    assert ager.trained_on == "toy" and "toy (cartoon) faces" in ager.warning


def test_agegan_export_records_a_strength(tmp_path):
    from helpers.agegan import AgeGAN

    torch.manual_seed(0)
    gan = AgeGAN(group_edges=(0, 30), image_size=16, ngf=4, ndf=4, n_enc_blocks=1, n_dec_blocks=1, style_dim=8,
                 n_layers_D=2, strength=0.8)
    run = tmp_path / "run"
    Checkpointer(run).save({"model": "agegan", "step": 3, "config": {**gan.config, "data": "utkface"},
                            "networks": {k: v.state_dict() for k, v in gan.networks.items()}}, 3)
    assert pretrained.load("agegan", path=pretrained.export("agegan", run, tmp_path / "a.safetensors")).strength == 0.8
    G = pretrained.load("agegan", path=pretrained.export("agegan", run, tmp_path / "b.safetensors", strength=0.6))
    assert G.strength == 0.6 and pretrained.read("agegan", tmp_path / "b.safetensors")[1]["strength"] == 0.6
    with pytest.raises(ValueError, match="strength must be"):
        pretrained.export("agegan", run, tmp_path / "c.safetensors", strength=5)
    with pytest.raises(ValueError, match="age GAN only"):
        pretrained.export("cyclegan", run, tmp_path / "d.safetensors", strength=0.5)
