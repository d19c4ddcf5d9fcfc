"""The notebooks' PRETRAINED switch: shipped weights for every training notebook, a check of the student's code first.

``Run.train(pretrained=True)`` runs the student's code for a few steps inside ``Trainer.trial`` (nothing written,
everything put back), then loads ``weights/<key>.safetensors`` into the networks that ship, with the run's
step and loss history, and checkpoints the loaded model in a run folder of its own.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from helpers import catalog, config, pretrained, weights
from helpers.cache import BatchLoader
from helpers.dcgan import DCGAN, DCGANRun
from helpers.training import Checkpointer, Precision

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20


def _settings(**kw):
    tiny = dict(image_size=8, nz=4, ngf=4, ndf=4, n_samples=4, batch_size=4, checkpoint_every=3, sample_every=3,
                seed=0, epochs=3, run_name="tiny")
    return replace(config.DCGAN, **{**tiny, **kw})


def _run(run_dir, settings=None, step_fn=None, seed=0) -> DCGANRun:
    s = settings or _settings()
    torch.manual_seed(seed)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    gan = DCGAN(s, device="cpu", precision=Precision("cpu"))
    if step_fn is not None:
        gan.step_fn = step_fn
    run = DCGANRun(s, "cpu", "toy", gan, BatchLoader(images, batch_size=4, flip=False, seed=0), run_dir)
    return run.start(gan.sample, nrow=2, progress=False)


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A weights/ folder holding dcgan-toy.safetensors, exported from a tiny trained run."""
    folder = tmp_path / "weights"
    monkeypatch.setattr(weights, "WEIGHTS_DIR", folder)
    trained = _run(tmp_path / "trained", seed=3)
    trained.train(steps=8, live=False)
    pretrained.export("dcgan-toy", trained.run_dir, note={"train_minutes": 0.1})
    return trained


def test_pretrained_settings_take_the_networks_from_the_file_and_the_bookkeeping_from_the_base(shipped):
    base = _settings(ngf=16, batch_size=2, n_samples=9)
    s = weights.pretrained_settings(base, "dcgan-toy")
    assert (s.ngf, s.nz, s.image_size) == (4, 4, 8)  # the file's networks
    assert (s.batch_size, s.n_samples) == (2, 9)  # the base's bookkeeping (smoke stays small)
    assert s.run_name == "tiny-pretrained" and weights.pretrained_settings(s, "dcgan-toy").run_name == s.run_name


def test_load_pretrained_checks_the_code_then_loads_the_shipped_run(shipped, tmp_path, capsys):
    run = _run(tmp_path / "mine")
    history = run.train(pretrained=True)
    out = capsys.readouterr().out
    assert f"check: {config.PRETRAINED_CHECK_STEPS} training steps with the course's code ran, every loss finite (loss_D" in out
    assert "loaded the course's trained G from dcgan-toy.safetensors (toy faces, 8 steps, 0.1 min" in out
    assert "PRETRAINED = False" in out
    # the generator is the shipped one (float16 storage), the step and the history are the shipped run's
    want = shipped.gan.G.state_dict()
    for k, v in run.gan.G.state_dict().items():
        assert torch.allclose(v.float(), want[k].float(), atol=2e-3, rtol=2e-3), k
    assert run.trainer.step == 8 and history.steps[-1] == 8 and set(history.terms) >= {"loss_D", "loss_G"}
    # the check left no trace; the loaded model is checkpointed, said to be the course's code's
    ckpts = Checkpointer(run.run_dir).paths()
    assert [p.name for p in ckpts] == ["ckpt_00000008.pt"]
    assert json.loads((run.run_dir / "code.json").read_text()) == {}
    assert run.pretrained["steps"] == 8
    # a run folder that notebook 07 and 08 find like a trained one
    again = _run(tmp_path / "mine")
    assert again.trainer.step == 8


def test_the_check_runs_the_students_code_and_says_when_the_generator_never_learns(shipped, tmp_path, capsys):
    source = textwrap.dedent("""
        def gan_step(gan, real):
            z = torch.randn(real.shape[0], gan.nz)
            fake = gan.G(z).detach()  # the classic bug: the generator gets no gradient
            loss_D = gan.d_loss(gan.D(real), gan.D(fake))
            gan.opt_D.zero_grad(); loss_D.backward(); gan.opt_D.step()
            return {"loss_D": loss_D}
    """)
    ns = {"__name__": "__main__", "torch": torch}
    exec(compile(source, "<cell>", "exec"), ns)  # noqa: S102 -- a test's own code, as a notebook cell runs it
    run = _run(tmp_path / "mine", step_fn=ns["gan_step"])
    run.train(pretrained=True)
    out = capsys.readouterr().out
    assert "with your gan_step ran" in out
    assert "warning: G did not change in those steps" in out and "optimiser never stepped" in out


def test_a_non_finite_loss_in_the_check_stops_before_anything_loads(shipped, tmp_path):
    def gan_step(gan, real):
        return {"loss_D": torch.tensor(float("nan"))}

    gan_step.__module__ = "__main__"
    run = _run(tmp_path / "mine", step_fn=gan_step)
    with pytest.raises(FloatingPointError, match="loss_D became nan"):
        run.train(pretrained=True)
    assert run.trainer.step == 0 and not Checkpointer(run.run_dir).paths()


def test_trial_puts_everything_back(tmp_path):
    run = _run(tmp_path / "r")
    t = run.trainer
    before = {k: v.clone() for k, v in run.gan.G.state_dict().items()}
    rng = torch.get_rng_state()
    with t.trial():
        t.fit(steps=4)
        assert t.step == 4
    assert t.step == 0 and len(t.history) == 0 and not Checkpointer(run.run_dir).paths()
    assert all(torch.equal(before[k], v) for k, v in run.gan.G.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_a_file_of_other_sizes_is_refused_with_what_to_do(shipped, tmp_path):
    run = _run(tmp_path / "wide", settings=_settings(ngf=8))
    with pytest.raises(weights.WeightsError, match="other sizes than this run's.*pretrained=True"):
        run.load_pretrained(check_steps=0)


def test_missing_and_foreign_files_say_what_to_do(shipped, tmp_path):
    with pytest.raises(weights.WeightsError, match="no shipped weights at .*python -m helpers.train cdcgan --data toy") as e:
        weights.read("cdcgan-toy")
    assert e.value._render_traceback_() == [f"\x1b[0;31mWeightsError\x1b[0m: {e.value}"]  # Jupyter: the message alone
    foreign = weights.path_of("cdcgan-toy")
    weights.path_of("dcgan-toy").rename(foreign)
    with pytest.raises(weights.WeightsError, match="holds weights of model 'dcgan-toy', not 'cdcgan-toy'"):
        weights.read("cdcgan-toy")


def test_cdcgan_groups_without_shipped_weights_get_a_clear_error():
    from helpers.cdcgan import CDCGANRun

    run = CDCGANRun.__new__(CDCGANRun)
    run.settings, run.source, run.groups = config.CDCGAN, "toy", ("1-15", "60+")
    with pytest.raises(weights.WeightsError, match="20-30 / 40-50 and 20-30 / 60\\+ only.*PRETRAINED = False"):
        run.pretrained_key()
    run.groups = config.CDCGAN.wide_groups
    assert run.pretrained_key() == "cdcgan-wide-toy"


def test_the_catalog_finds_pretrained_runs_after_the_trained_ones():
    for name, spec in catalog.MODELS.items():
        names = spec.run_names()
        plain = [n for n in names if "pretrained" not in n]
        assert names[: len(plain)] == plain and len(names) == 2 * len(plain), name


# --------------------------------------------------------------------------- the files that ship


# The models' files (realism.safetensors, the evaluation's blotch detector, is helpers.realism's: tests/test_realism.py).
SHIPPED = sorted(p.stem for p in (ROOT / "weights").glob("*.safetensors") if p.stem != "realism")


def test_every_training_notebook_ships_weights_for_toy_and_real_faces_within_the_size_limits():
    assert set(SHIPPED) == set(weights.keys()) == set(pretrained.SHIPPED_NAMES)  # the CLI's light list too
    sizes = {k: weights.path_of(k, ROOT / "weights").stat().st_size for k in SHIPPED}
    assert max(sizes.values()) <= 8 * MiB, sizes
    assert sum(p.stat().st_size for p in (ROOT / "weights").iterdir()) <= 40 * MiB


@pytest.mark.parametrize("key", SHIPPED)
def test_each_shipped_file_builds_from_its_notebook_settings_and_loads(key):
    """The networks ``default_settings(device, source, pretrained=True)`` builds take the file's weights exactly."""
    from helpers import agegan, cdcgan, cyclegan, dcgan, encoder

    model, source = weights.model_of(key), "toy" if key.endswith("-toy") else "utkface"
    family = {"dcgan": dcgan, "cyclegan": cyclegan, "cdcgan": cdcgan, "cdcgan-wide": cdcgan, "encoder": encoder,
              "agegan": agegan}[model]
    folder = ROOT / "weights"
    nets, cfg, note, parts = weights.read(key, weights.path_of(key, folder))
    s = weights.pretrained_settings(family.default_settings("cpu", source), key, weights.path_of(key, folder))
    if model == "dcgan":
        built = {"G": dcgan.DCGAN(s, device="cpu").G}
    elif model == "cyclegan":
        gan = cyclegan.CycleGAN(s, device="cpu")
        built = {k: gan.networks[k] for k in ("G_AB", "G_BA")}
    elif model.startswith("cdcgan"):
        from helpers.dcgan import Generator

        groups = s.wide_groups if model == "cdcgan-wide" else s.groups
        built = {"G": Generator(s.nz, s.ngf, n_classes=len(groups), image_size=s.image_size)}
    elif model == "encoder":
        built = {f"E_{m}": encoder.Encoder(cfg["nz"], s.nef, cfg["image_size"], s.kernel_size) for m in ("seed", "real")}
    else:
        built = {"G": agegan.AgeGAN(s).G}
    for name, net in built.items():
        net.load_state_dict(nets[name])  # strict: every tensor, every shape
    if key not in ("cyclegan", "agegan"):  # the two photo models predate the histories
        assert parts and all(len(p["history"]["step"]) > 10 and p["step"] > 0 for p in parts.values()), key


# --------------------------------------------------------------------------- the notebooks


TRAINING_NOTEBOOKS = ["02_gan_basics", "03_cyclegan", "04_conditional_dcgan", "05_encoder", "06_age_modulated_gan"]


@pytest.mark.parametrize("name", TRAINING_NOTEBOOKS)
def test_each_training_notebook_loads_by_default_and_every_training_call_obeys_the_switch(name):
    """``PRETRAINED = True`` is the committed default (nbval runs it), and no training cell ignores it."""
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    settings = [c for c in code if "PRETRAINED = True\n" in c]
    assert len(settings) == 1 and "default_settings(" in settings[0] and "pretrained=PRETRAINED" in settings[0]
    calls = [line for c in code for line in c.splitlines()
             if ".train(" in line and not line.lstrip().startswith("#") and "toygan" not in line]
    assert calls and all("pretrained=PRETRAINED" in line for line in calls), calls


@pytest.fixture(scope="module")
def utkface_folder(tmp_path_factory):
    from test_notebooks_real_faces import utkface_layout_folder  # tests/ is on sys.path (pytest's rootdir import mode)

    return utkface_layout_folder(tmp_path_factory.mktemp("utk") / "UTKFace")


@pytest.mark.parametrize("model", ["dcgan", "cyclegan", "cdcgan", "cdcgan-wide", "agegan", "encoder"])
@pytest.mark.parametrize("source", ["utkface", "toy"])
def test_every_model_loads_its_shipped_file_as_its_notebook_does(model, source, utkface_folder, tmp_path, monkeypatch,
                                                               capsys):
    """Colab's default (real faces) and the laptop's (toy faces): the notebook's settings, setup and train(pretrained=True)."""
    from helpers import agegan, cdcgan, cyclegan, dcgan, encoder

    monkeypatch.setattr(config, "RUNS_DIR", tmp_path / "runs")
    data = dict(data=source, data_path=str(utkface_folder) if source == "utkface" else None)
    if model == "encoder":
        S = encoder.default_settings("cpu", source, pretrained=True)
        inv = encoder.setup_inversion(S, device="cpu", pretrained=True, **data)
        history = inv.train(pretrained=True)
        assert inv.cgan.trainer.step == 1200 and inv.seed.trainer.step == inv.real.trainer.step == 1000
        assert torch.isfinite(inv.reconstruction_rows(inv.show_idx[:2])[0][1]).all()
    else:
        family = {"dcgan": dcgan, "cyclegan": cyclegan, "cdcgan": cdcgan, "cdcgan-wide": cdcgan, "agegan": agegan}[model]
        S = family.default_settings("cpu", source, pretrained=True)
        assert S.run_name.endswith("-pretrained")
        if model.startswith("cdcgan"):
            run = cdcgan.setup_cdcgan(S, S.wide_groups if model == "cdcgan-wide" else S.groups, device="cpu", **data)
        elif model == "dcgan":
            run = dcgan.setup_dcgan(S, device="cpu", **data)
        elif model == "cyclegan":
            run = cyclegan.setup_cyclegan(S, device="cpu", **data)
        else:
            run = agegan.setup_agegan(S, **data)
        history = run.train(pretrained=True)
        assert run.trainer.step > 0 and run.trainer.epoch > 0 and Checkpointer(run.run_dir).latest() is not None
        if model in ("cyclegan", "agegan"):  # trained to the end of a linear decay: the rate is where it left it
            assert run.model.opt_G.param_groups[0]["lr"] < 0.5 * S.lr, run.model.opt_G.param_groups[0]["lr"]
        assert catalog.get(model).find_run() == run.run_dir  # notebooks 07 and 08 find it
    out = capsys.readouterr().out
    assert "check:" in out and "every loss finite" in out and "loaded the course's trained" in out
    if (model, source) not in (("cyclegan", "utkface"), ("agegan", "utkface")):  # the photo files keep no history
        assert len(history) > 10
