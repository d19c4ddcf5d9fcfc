"""The shared training machinery: exact resume, atomic checkpoints, clear errors."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from helpers import training
from helpers.training import (
    Checkpointer,
    CheckpointMismatch,
    LossHistory,
    NonFiniteLoss,
    Precision,
    Trainer,
    pick_device,
    seed_everything,
)

# A tiny DCGAN on random uint8 images, with flips (the loader's RNG) and an LR schedule, so that
# every piece of state a resume must restore is exercised. The same code builds it in this
# process and in the fresh process that resumes.
BUILD = textwrap.dedent(
    """
    import torch
    from helpers.cache import BatchLoader
    from helpers.dcgan import DCGAN
    from helpers.training import Trainer, seed_everything

    def build(run_dir, ngf=8, name="dcgan", resume=True):
        seed_everything(0)
        images = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        loader = BatchLoader(images, batch_size=8, flip=True, seed=3)  # 5 batches per epoch
        gan = DCGAN(nz=8, ngf=ngf, ndf=8, image_size=16, n_samples=4)
        gan.name = name
        gan.schedulers = {"G": torch.optim.lr_scheduler.StepLR(gan.opt_G, step_size=1, gamma=0.5)}
        return Trainer(gan, loader, run_dir, checkpoint_every=4, progress=False, resume=resume)
    """
)
namespace: dict = {}
exec(BUILD, namespace)
build = namespace["build"]

N = 7  # mid-epoch (5 batches per epoch); 2N = 14 crosses two epoch ends and a schedule step


def _weights(trainer) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.clone() for n, net in trainer.model.networks.items() for k, v in net.state_dict().items()}


def test_resume_in_a_fresh_process_is_exact(tmp_path):
    straight = build(tmp_path / "straight")
    straight.fit(steps=2 * N)

    first_half = build(tmp_path / "split")
    first_half.fit(steps=N)
    assert first_half.checkpointer.latest().name == f"ckpt_{N:08d}.pt"
    script = BUILD + textwrap.dedent(
        f"""
        t = build({str(tmp_path / 'split')!r})
        assert t.step == {N}, t.step
        t.fit(steps={2 * N})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)

    resumed = build(tmp_path / "split")  # loads the fresh process's final checkpoint
    assert resumed.step == 2 * N and resumed.epoch == 2
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), rtol=0, atol=1e-6), k
    assert resumed.history.to_frame().equals(straight.history.to_frame())
    lr = resumed.model.opt_G.param_groups[0]["lr"]
    assert lr == pytest.approx(straight.model.opt_G.param_groups[0]["lr"]) and lr == pytest.approx(2e-4 / 4)


def test_finished_run_trains_no_further(tmp_path):
    t = build(tmp_path)
    t.fit(epochs=1)
    again = build(tmp_path)
    assert (again.step, again.epoch) == (5, 1)
    again.fit(epochs=1)
    assert again.step == 5


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    t = build(tmp_path)
    t.fit(steps=4)
    good = t.checkpointer.latest()
    assert good.name == "ckpt_00000004.pt"

    def dying_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(training.torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        t.fit(steps=6)  # training goes on to step 5 (epoch end: save) and dies mid-save
    monkeypatch.undo()

    assert t.checkpointer.latest() == good  # the half-written file is only a *.tmp
    assert list(tmp_path.glob("*.tmp"))
    state = torch.load(good, weights_only=True)
    assert state["step"] == 4
    assert build(tmp_path).step == 4  # a new trainer resumes from it
    t2 = build(tmp_path)
    t2.fit(steps=5)
    assert not list(tmp_path.glob("*.tmp"))  # the next good save clears the leftover


def test_unreadable_latest_falls_back_to_previous(tmp_path):
    ck = Checkpointer(tmp_path, keep=3)
    ck.save({"a": torch.ones(2)}, 1)
    ck.save({"a": torch.zeros(2)}, 2)
    (tmp_path / "ckpt_00000003.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="cannot be read"):
        state, path = ck.load()
    assert path.name == "ckpt_00000002.pt" and state["a"].sum() == 0


def test_checkpointer_keeps_the_newest(tmp_path):
    ck = Checkpointer(tmp_path, keep=2)
    for s in (1, 2, 3):
        ck.save({"s": s}, s)
    assert [p.name for p in ck.paths()] == ["ckpt_00000002.pt", "ckpt_00000003.pt"]


def test_wrong_model_checkpoint_is_refused(tmp_path):
    build(tmp_path).fit(steps=4)
    with pytest.raises(CheckpointMismatch) as e:
        build(tmp_path, name="cyclegan")
    msg = str(e.value)
    assert "'dcgan'" in msg and "'cyclegan'" in msg and "another run folder" in msg and "delete" in msg


def test_other_configuration_is_refused_with_the_differences(tmp_path):
    build(tmp_path).fit(steps=4)
    with pytest.raises(CheckpointMismatch) as e:
        build(tmp_path, ngf=16)
    msg = str(e.value)
    assert "ngf: 8 in the checkpoint, 16 now" in msg and "delete" in msg
    assert "nz" not in msg  # only what differs


def test_non_finite_loss_stops_with_name_and_step(tmp_path):
    t = build(tmp_path)
    real_step = t.model.train_step

    def poisoned(batch):
        out = real_step(batch)
        if t.step + 1 == 6:
            out["loss_G"] = torch.tensor(float("nan"))
        return out

    t.model.train_step = poisoned
    with pytest.raises(NonFiniteLoss) as e:
        t.fit(steps=10)
    msg = str(e.value)
    assert "loss_G" in msg and "step 6" in msg and "ckpt_00000005.pt" in msg and "learning rate" in msg
    assert t.checkpointer.latest().name == "ckpt_00000005.pt"
    assert torch.load(t.checkpointer.latest(), weights_only=True)["step"] == 5


def test_checkpoint_loads_with_weights_only(tmp_path):
    t = build(tmp_path)
    t.fit(steps=2)
    state = torch.load(t.save(), weights_only=True)
    assert state["model"] == "dcgan" and state["config"]["ngf"] == 8 and state["step"] == 2
    assert set(state["networks"]) == {"G", "D"} and set(state["optimizers"]) == {"G", "D"}


def test_snapshots_and_callbacks(tmp_path):
    t = build(tmp_path)
    snaps = training.Snapshots(t.model.sample, tmp_path / "samples", nrow=2)
    seen = []
    t.every(3, snaps)
    t.on_epoch_end(lambda tr: seen.append(tr.epoch))
    t.fit(steps=7)
    frames, steps = snaps.frames()
    assert steps == [3, 6] and frames[0].shape == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2, 3)
    assert seen == [1]


def test_loss_history_records_and_round_trips():
    h = LossHistory()
    h.record(1, a=1.0, b=2.0)
    h.record(2, a=3.0)
    h.record(3, a=4.0, c=5.0)
    df = h.to_frame()
    assert list(df.columns) == ["a", "b", "c"] and list(df.index) == [1, 2, 3]
    assert math.isnan(df.loc[2, "b"]) and math.isnan(df.loc[1, "c"])
    h2 = LossHistory()
    h2.load_state_dict(h.state_dict())
    assert h2.to_frame().equals(df) and h2.last()["c"] == 5.0


def test_device_seed_and_precision_on_cpu():
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))
    p = Precision("cpu")
    assert not p.enabled and p.scaler is None and p.memory_format == torch.contiguous_format
    with p.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_fit_needs_a_length(tmp_path):
    with pytest.raises(ValueError, match="how long"):
        build(tmp_path).fit()


def test_grad_scaler_path_and_its_state_are_checkpointed(tmp_path):
    # The float16 path of a T4, exercised on the CPU: a GradScaler scales every loss before
    # backward and unscales the gradients before each optimiser step.
    t = build(tmp_path)
    t.model.precision.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=2)
    t.fit(steps=4)
    scale = t.model.precision.scaler.get_scale()
    assert scale == 1024.0 * 2**2  # two growth intervals without overflow
    t2 = build(tmp_path, resume=False)
    t2.model.precision.scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    t2.restore()
    assert t2.step == 4 and t2.model.precision.scaler.get_scale() == scale


def test_an_option_added_after_a_checkpoint_resumes_at_its_default_and_is_refused_when_on():
    from helpers.training import check_compatible

    old = {"format": training.CHECKPOINT_FORMAT, "model": "agegan", "config": {"ngf": 16, "group_edges": [0, 15]}}
    now = {"ngf": 16, "group_edges": [0, 15], "mask": False, "diffaug": ""}
    defaults = {"mask": False, "diffaug": "", "group_edges": (0, 15), "run_name": "agegan"}
    check_compatible(old, "agegan", now, "runs/x", defaults)  # the new options at their defaults: the old run
    with pytest.raises(CheckpointMismatch, match="mask: False in the checkpoint, True now"):
        check_compatible(old, "agegan", {**now, "mask": True}, "runs/x", defaults)
    with pytest.raises(CheckpointMismatch, match="mask"):  # without the defaults, nothing is assumed
        check_compatible(old, "agegan", now, "runs/x")


def test_how_a_model_is_used_does_not_stop_its_run_resuming():
    """``strength`` is recorded for using the age GAN; a run made at another strength (or before it existed) resumes."""
    from helpers.training import check_compatible

    old = {"format": training.CHECKPOINT_FORMAT, "model": "agegan", "config": {"ngf": 16, "strength": 1.0}}
    check_compatible(old, "agegan", {"ngf": 16, "strength": 0.9}, "runs/x")
    check_compatible({**old, "config": {"ngf": 16}}, "agegan", {"ngf": 16, "strength": 0.9}, "runs/x", {"strength": 1.0})
    with pytest.raises(CheckpointMismatch, match="ngf: 16 in the checkpoint, 32 now"):  # training settings still count
        check_compatible(old, "agegan", {"ngf": 32, "strength": 0.9}, "runs/x")



def test_a_step_that_bypasses_the_scaler_does_not_crash_a_t4(recwarn):
    """Issue 26: a student's step that calls backward() and step() itself (right on a CPU) met GradScaler.update's
    assertion on a float16 GPU. Now the update is skipped, with one warning that says what to call."""
    import warnings

    from helpers.training import Precision

    amp = Precision.t4()
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):
        with amp.autocast():
            loss = net(torch.randn(4, 3)).float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        amp.update()  # the Trainer's call after every step
    unscaled = [w for w in recwarn.list if "not scaled" in str(w.message)]
    assert len(unscaled) == 1 and "precision.backward(loss)" in str(unscaled[0].message)
    # and the scaler's own path still updates the scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with amp.autocast():
            loss = net(torch.randn(4, 3)).float().pow(2).mean()
        opt.zero_grad()
        amp.backward(loss)
        amp.step(opt)
        amp.update()
    assert amp.scaler.get_scale() > 0
