"""The settings each model gets for a device and a face source, and the catalog that follows them.

DCGAN, the conditional DCGAN and the encoder each have a toy setting, a real-face CPU setting and
a real-face GPU setting (helpers.config); ``default_settings(device, source)`` in each family
module chooses, as ``helpers.cyclegan.default_settings`` does. The full-mode choices are asked of a
fresh interpreter without SMOKE, since the test suite itself runs in smoke mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from helpers import catalog, cdcgan, config, dcgan, encoder

FAMILIES = {"dcgan": dcgan, "cdcgan": cdcgan, "cdcgan-wide": cdcgan, "encoder": encoder}
CHOICES = [("cpu", "toy"), ("cuda", "toy"), ("cpu", "utkface"), ("cuda", "utkface"), ("cuda:1", "facial-age"),
           ("mps", "imdb-wiki")]

_FULL_MODE = r"""
import json
from helpers import catalog, cdcgan, config, dcgan, encoder

def names(obj):  # which helpers.config names hold this very settings object
    return sorted(k for k, v in vars(config).items() if v is obj)

out = {}
for device, source in [("cpu", "toy"), ("cuda", "toy"), ("cpu", "utkface"), ("cuda", "utkface")]:
    key = f"{device}/{source}"
    d, c, e = (m.default_settings(device, source) for m in (dcgan, cdcgan, encoder))
    out[key] = {
        "dcgan": names(d), "cdcgan": names(c), "encoder": names(e),
        "encoder_inverts": names(encoder.cgan_settings(e)),
        "catalog_follows": all(catalog.get(n).settings(device, source) is m.default_settings(device, source)
                               for n, m in [("dcgan", dcgan), ("cdcgan", cdcgan), ("cdcgan-wide", cdcgan),
                                            ("encoder", encoder)]),
        "run_dirs": {n: str(catalog.get(n).run_name(catalog.get(n).settings(device, source)))
                     for n in ("dcgan", "cdcgan", "cdcgan-wide", "encoder")},
    }
out["sizes"] = {n: {k: getattr(getattr(config, n), k) for k in ("batch_size", "ngf", "ndf", "epochs", "steps", "nef")
                    if hasattr(getattr(config, n), k)}
                for n in ("DCGAN", "DCGAN_REAL", "CDCGAN", "CDCGAN_REAL", "ENCODER", "ENCODER_REAL")}
out["run_names"] = {n: catalog.get(n).run_names() for n in ("dcgan", "cdcgan", "cdcgan-wide", "encoder")}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def full_mode() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SMOKE", "FACEAGING_SOURCE")}
    out = subprocess.run([sys.executable, "-c", _FULL_MODE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_full_mode_choices_by_device_and_source(full_mode):
    # Toy faces keep their one setting on every device; real faces get the CPU or the GPU setting.
    for device in ("cpu", "cuda"):
        toy = full_mode[f"{device}/toy"]
        assert "DCGAN" in toy["dcgan"] and "CDCGAN" in toy["cdcgan"] and "ENCODER" in toy["encoder"]
        assert "DCGAN_REAL" not in toy["dcgan"] and "CDCGAN_REAL" not in toy["cdcgan"]
    cpu, gpu = full_mode["cpu/utkface"], full_mode["cuda/utkface"]
    assert "DCGAN_REAL_CPU" in cpu["dcgan"] and "CDCGAN_REAL_CPU" in cpu["cdcgan"] and "ENCODER_REAL_CPU" in cpu["encoder"]
    assert gpu["dcgan"] == ["DCGAN_REAL"] and gpu["cdcgan"] == ["CDCGAN_REAL"] and gpu["encoder"] == ["ENCODER_REAL"]
    # The real CPU settings are the ones measured on real faces: the toy settings themselves.
    assert "DCGAN" in cpu["dcgan"] and "CDCGAN" in cpu["cdcgan"] and "ENCODER" in cpu["encoder"]


def test_the_gpu_settings_are_larger(full_mode):
    s = full_mode["sizes"]
    assert s["DCGAN_REAL"]["batch_size"] > s["DCGAN"]["batch_size"]
    assert s["DCGAN_REAL"]["epochs"] > s["DCGAN"]["epochs"]
    assert s["CDCGAN_REAL"]["ngf"] > s["CDCGAN"]["ngf"] and s["CDCGAN_REAL"]["ndf"] > s["CDCGAN"]["ndf"]
    assert s["CDCGAN_REAL"]["steps"] > s["CDCGAN"]["steps"] and s["CDCGAN_REAL"]["batch_size"] > s["CDCGAN"]["batch_size"]
    assert s["ENCODER_REAL"]["steps"] > s["ENCODER"]["steps"] and s["ENCODER_REAL"]["nef"] > s["ENCODER"]["nef"]


def test_each_encoder_inverts_the_cdcgan_of_its_device_and_faces(full_mode):
    for key in ("cpu/toy", "cuda/toy", "cpu/utkface", "cuda/utkface"):
        assert set(full_mode[key]["encoder_inverts"]) == set(full_mode[key]["cdcgan"]), key
    assert full_mode["cuda/utkface"]["encoder_inverts"] == ["CDCGAN_REAL"]


def test_full_mode_catalog_follows_and_finds_every_run(full_mode):
    for key in ("cpu/toy", "cuda/toy", "cpu/utkface", "cuda/utkface"):
        assert full_mode[key]["catalog_follows"], key
        for model, name in full_mode[key]["run_dirs"].items():
            assert name in full_mode["run_names"][model], (key, model, name)
    # The real-face CPU runs already trained keep their folders; the GPU runs get their own.
    assert full_mode["cpu/utkface"]["run_dirs"] == {"dcgan": "dcgan", "cdcgan": "cdcgan",
                                                    "cdcgan-wide": "cdcgan_20-30_60+", "encoder": "encoder"}
    assert full_mode["cuda/utkface"]["run_dirs"] == {"dcgan": "dcgan-real", "cdcgan": "cdcgan-real",
                                                     "cdcgan-wide": "cdcgan-real_20-30_60+", "encoder": "encoder-real"}


@pytest.mark.skipif(not config.SMOKE, reason="checks the smoke sizes (the suite runs with SMOKE=1)")
@pytest.mark.parametrize("device,source", CHOICES)
def test_smoke_mode_keeps_the_tiny_sizes_everywhere(device, source):
    d, c, e = (m.default_settings(device, source) for m in (dcgan, cdcgan, encoder))
    assert (d.image_size, d.ngf, d.epochs) == (32, 16, 2) and d.run_name == "dcgan-smoke"
    assert (c.image_size, c.ngf, c.steps) == (32, 16, 20) and c.run_name == "cdcgan-smoke"
    assert (e.nef, e.steps) == (8, 20) and e.run_name == "encoder-smoke"
    assert encoder.cgan_settings(e) is c


@pytest.mark.parametrize("device,source", CHOICES)
def test_catalog_settings_are_the_families_defaults(device, source):
    for name, module in FAMILIES.items():
        spec = catalog.get(name)
        s = spec.settings(device, source)
        assert s is module.default_settings(device, source)
        assert spec.run_name(s) in spec.run_names()  # evaluate and notebook 08 look there


def test_catalog_run_dirs_name_the_real_face_folders(tmp_path):
    dirs = [d.name for d in catalog.get("cdcgan-wide").candidate_dirs(tmp_path)]
    c = config.CDCGAN
    assert f"{cdcgan.run_name_for(c, c.wide_groups)}-utkface" in dirs
    assert f"{config.ENCODER.run_name}-utkface" in [d.name for d in catalog.get("encoder").candidate_dirs(tmp_path)]


def test_cgan_settings_refuses_a_name_that_is_no_cdcgan_setting():
    assert encoder.cgan_settings(config.ENCODER) is config.CDCGAN
    with pytest.raises(ValueError, match="cgan_settings must name a conditional DCGAN setting.*CDCGAN_REAL"):
        encoder.cgan_settings(replace(config.ENCODER, cgan_settings="DCGAN"))
    with pytest.raises(ValueError, match="'NOPE'"):
        encoder.cgan_settings(replace(config.ENCODER, cgan_settings="NOPE"))


class _Chosen(Exception):
    """Raised by the stand-ins below to stop a setup once it has chosen its settings."""


def test_setups_choose_by_the_faces_they_loaded(monkeypatch):
    seen = []

    def chooser(device, source):
        seen.append((str(device), source))
        raise _Chosen

    for module, setup in [(dcgan, dcgan.setup_dcgan), (cdcgan, cdcgan.setup_cdcgan)]:
        # "auto" that finds no UTKFace loads the toy faces: the settings follow what was loaded.
        monkeypatch.setattr(module, "load_split", lambda *a, **k: ("utkface", None, None))
        monkeypatch.setattr(module, "default_settings", chooser)
        with pytest.raises(_Chosen):
            setup(data="auto", device="cpu", verbose=False)
    assert seen == [("cpu", "utkface"), ("cpu", "utkface")]


def test_setup_inversion_inverts_the_cdcgan_its_settings_name(monkeypatch):
    gpu_like = replace(config.CDCGAN, nz=7)  # a stand-in for CDCGAN_REAL, told apart from CDCGAN even in smoke mode
    monkeypatch.setattr(config, "CDCGAN_REAL", gpu_like)
    monkeypatch.setattr(encoder, "resolve_source", lambda data, path: "utkface")
    asked = []
    monkeypatch.setattr(encoder, "default_settings",
                        lambda device, source: asked.append(source) or replace(config.ENCODER, cgan_settings="CDCGAN_REAL"))

    def fake_setup(c, groups, **kw):
        raise _Chosen(c, groups)

    monkeypatch.setattr(encoder, "setup_cdcgan", fake_setup)
    with pytest.raises(_Chosen) as err:
        encoder.setup_inversion(device="cpu", verbose=False)
    assert asked == ["utkface"]
    assert err.value.args[0] is gpu_like and err.value.args[1] == gpu_like.wide_groups
    with pytest.raises(_Chosen) as err:  # explicit settings are used as they are
        encoder.setup_inversion(replace(config.ENCODER, cgan="seed"), device="cpu", verbose=False)
    assert err.value.args[0] is config.CDCGAN and err.value.args[1] == config.CDCGAN.groups
