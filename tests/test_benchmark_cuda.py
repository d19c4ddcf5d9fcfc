"""The lines that run only on CUDA, run here with the GPU faked (issue 26).

No GPU runs in CI, so each CUDA-only line is reached with the device's answers monkeypatched:
``torch.cuda.is_available``, ``get_device_capability``, ``mem_get_info`` and the rest. The lines that
cannot be reached this way, and why, are listed in README.md's GPU section.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from helpers import benchmark, config, cyclegan, dcgan, gpu_check, runs, training
from helpers.training import OutOfGPUMemory, Precision, Trainer, pick_device

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _fake_gpu(monkeypatch, capability=(7, 5)):
    """A CUDA device that answers like a GPU of ``capability`` (a T4 is 7.5)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


def _precision_on_fake_gpu():
    with warnings.catch_warnings():  # GradScaler("cuda") warns that no CUDA is here, which this test fakes
        warnings.simplefilter("ignore", UserWarning)
        return Precision("cuda")


# --------------------------------------------------------------------------- the precision a GPU gets


@pytest.mark.parametrize("capability, dtype, scaled", [
    ((7, 5), torch.float16, True),  # T4: float16 with a GradScaler
    ((8, 0), torch.bfloat16, False),  # A100
    ((9, 0), torch.bfloat16, False),  # H100 / H200
])
def test_precision_follows_the_compute_capability(monkeypatch, capability, dtype, scaled):
    _fake_gpu(monkeypatch, capability)
    p = _precision_on_fake_gpu()
    assert p.enabled and p.dtype == dtype and (p.scaler is not None) == scaled
    assert p.memory_format == torch.channels_last  # channels-last on CUDA
    assert torch.backends.cudnn.benchmark is True  # cuDNN picks its kernels per shape
    assert training.autocast_dtype(capability) == dtype
    assert "GradScaler" in repr(p) if scaled else "bfloat16" in repr(p)


def test_precision_can_leave_cudnn_benchmark_off_and_refuses_other_dtypes(monkeypatch):
    _fake_gpu(monkeypatch, (8, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        Precision("cuda", benchmark=False)
    assert torch.backends.cudnn.benchmark is False
    with pytest.raises(ValueError, match="float16 or torch.bfloat16"):
        Precision("cpu", dtype=torch.float64)


def test_a_t4_precision_emulated_on_the_cpu():
    p = Precision.t4("cpu")
    assert p.enabled and p.dtype == torch.float16 and p.scaler is not None and p.memory_format == torch.channels_last
    with p.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float16


def test_pick_device_prefers_cuda_when_it_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda" and pick_device("cuda").type == "cuda"
    assert pick_device("cpu").type == "cpu"


# --------------------------------------------------------------------------- data on the GPU


def test_faces_stay_on_the_gpu_only_when_they_take_under_a_third_of_its_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * 10**9, 16 * 10**9))
    assert runs.data_device(torch.device("cuda"), 9 * 10**8).type == "cuda"
    assert runs.data_device(torch.device("cuda"), 11 * 10**8).type == "cpu"
    assert runs.data_device(torch.device("cpu"), 10**12).type == "cpu"  # never asked on a CPU


def test_unpaired_batches_move_faces_kept_elsewhere_to_the_device():
    # The non_blocking copy to the GPU, for faces too big to keep there; "meta" stands in for the GPU.
    a = [torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)]
    b = [torch.ones(2, 3, 4, 4)]
    batches = list(cyclegan.UnpairedBatches(a, b, device="meta"))
    assert len(batches) == 2 and all(x.device.type == "meta" and y.device.type == "meta" for x, y in batches)


# --------------------------------------------------------------------------- random states, clocks, names


def test_cuda_random_states_are_checkpointed_and_restored(monkeypatch):
    states = [torch.arange(8, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: restored.append(s))
    state = training.rng_state()
    assert state["cuda"] is states
    training.set_rng_state(state)
    assert restored == [states]


def test_clocks_wait_for_the_gpu_and_name_it(monkeypatch):
    waited, names = [], []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(torch.device(device).type))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: names.append(device) or "Tesla T4")
    benchmark.sync("cuda")
    gpu_check.sync("cpu")  # nothing to wait for on a CPU
    assert waited == ["cuda"] and gpu_check.sync is benchmark.sync
    assert gpu_check._device_name("cuda") == "Tesla T4" and len(names) == 1


# --------------------------------------------------------------------------- the GradScaler's skipped steps


class _Linear(training.Trainable):
    """One linear layer trained towards 1 under the T4's precision emulated on the CPU."""

    name = "linear"

    def __init__(self, init_scale: float):
        self.net = torch.nn.Linear(8, 8)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)
        self.networks, self.optimizers, self.config = {"net": self.net}, {"net": self.opt}, {}
        self.precision = Precision.t4("cpu")
        self.precision.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)

    def train_step(self, batch):
        with self.precision.autocast():
            loss = (self.net(batch) - 1).pow(2).mean()
        self.opt.zero_grad()
        self.precision.backward(loss)
        self.precision.step(self.opt)
        return {"loss": loss.detach()}


def test_a_float16_step_whose_gradients_overflow_is_skipped_and_the_scale_halved(tmp_path):
    model = _Linear(init_scale=2.0**40)  # scaled float16 gradients overflow, as a T4's first steps may
    before = model.net.weight.detach().clone()
    trainer = Trainer(model, [torch.randn(4, 8)], tmp_path, progress=False)
    trainer.fit(steps=1)
    assert torch.equal(model.net.weight, before)  # skipped: no inf or NaN reached the weights
    assert model.precision.scaler.get_scale() == 2.0**39
    small = _Linear(init_scale=2.0**4)
    before = small.net.weight.detach().clone()
    Trainer(small, [torch.randn(4, 8)], tmp_path / "b", progress=False).fit(steps=1)
    assert not torch.equal(small.net.weight, before) and torch.isfinite(small.net.weight).all()


# --------------------------------------------------------------------------- out of GPU memory


def test_out_of_gpu_memory_ends_with_one_sentence_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    from helpers.train import EXIT_MEMORY, main

    real_step, calls = dcgan.DCGAN.train_step, []
    emptied = []

    def step(self, batch):
        calls.append(1)
        if len(calls) == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self, batch)

    monkeypatch.setattr(dcgan.DCGAN, "train_step", step)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # the failed step's memory goes back
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    run = tmp_path / "run"
    code = main(["dcgan", "--data", "toy", "--device", "cpu", "--steps", "4", "--run-dir", str(run),
                 "--set", "checkpoint_every=2"])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    assert code == EXIT_MEMORY and emptied
    assert err.count(". ") == 0 and err.endswith(".")  # one sentence
    b = config.DCGAN.batch_size
    assert "at step 3 with DCGAN" in err and f"--set batch_size={b // 2}" in err and "ckpt_00000002.pt" in err
    assert sorted(p.name for p in run.glob("ckpt_*.pt")) == ["ckpt_00000002.pt"]


def test_the_memory_message_for_a_batch_of_one_and_no_checkpoint():
    msg = training.out_of_memory_message(1, 1, None, "CYCLEGAN_REAL")
    assert "no checkpoint was written yet" in msg and "image_size" in msg and "batch_size=" not in msg
    assert isinstance(OutOfGPUMemory(msg), RuntimeError)


# --------------------------------------------------------------------------- torch.compile's guard


def test_compile_needs_a_cuda_gpu_of_capability_7(monkeypatch):
    with pytest.raises(SystemExit, match="--compile needs a CUDA GPU"):
        benchmark.main(["cyclegan", "--compile", "--device", "cpu"])
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 1))
    with pytest.raises(benchmark.CompileError, match="7.0 or newer"):
        benchmark.check_compile("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    benchmark.check_compile("cuda")  # a T4 compiles


def test_a_compiler_failure_says_to_leave_compile_out():
    def fails():
        raise RuntimeError("BackendCompilerFailed: backend='inductor' raised:\nCalledProcessError ...")

    with pytest.raises(benchmark.CompileError, match="BackendCompilerFailed.*without --compile"):
        benchmark.compiled(fails)
    assert benchmark.compiled(lambda: np.float64(1.5)) == 1.5
