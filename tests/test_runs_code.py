"""A run knows whose code trained it: a changed student function never silently resumes an old run."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace

import torch

from helpers import config, runs
from helpers.cache import BatchLoader
from helpers.dcgan import DCGAN, DCGANRun
from helpers.training import Precision


def _run(run_dir, step_fn=None) -> DCGANRun:
    """A tiny DCGAN run on random images (its settings count steps in the usual DCGAN way), resumed from run_dir."""
    s = replace(config.DCGAN, image_size=8, nz=4, ngf=4, ndf=4, n_samples=4, batch_size=4, checkpoint_every=2,
                sample_every=2, seed=0)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    loader = BatchLoader(images, batch_size=4, flip=False, seed=0)
    gan = DCGAN(s, device="cpu", precision=Precision("cpu"))
    if step_fn is not None:
        gan.step_fn = step_fn
    run = DCGANRun(s, "cpu", "toy", gan, loader, run_dir)
    return run.start(gan.sample, nrow=2, progress=False)


class _CourseStep:
    """The course's own step, called from a student's: step_fn set aside for the call.

    A callable object, not a function, so that it is not taken for a function of the student's.
    """

    def __call__(self, gan, real):
        mine, gan.step_fn = gan.step_fn, None
        try:
            return gan.train_step(real)
        finally:
            gan.step_fn = mine


_course_step = _CourseStep()


def _student(body_constant: float):
    """A student's gan_step, compiled from source the way a notebook cell is (module ``__main__``)."""
    source = textwrap.dedent(f"""
        def gan_step(gan, real):
            out = course_step(gan, real)
            return {{**out, "extra": torch.tensor({body_constant})}}
    """)
    namespace = {"__name__": "__main__", "torch": torch, "course_step": _course_step}
    exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102 -- a test's own code, as a notebook cell runs it
    return namespace["gan_step"]


def test_fingerprint_names_the_student_functions_only():
    step = _student(1.0)
    gan = DCGAN(replace(config.DCGAN, image_size=8, nz=4, ngf=4, ndf=4, n_samples=4), device="cpu")
    assert runs.code_fingerprint(gan) == {}  # the course's own losses and step
    gan.step_fn = step
    print_ = runs.code_fingerprint(gan)
    assert list(print_) == ["gan_step"]
    assert runs.code_fingerprint(gan) == print_  # stable
    gan.step_fn = _student(2.0)
    assert runs.code_fingerprint(gan)["gan_step"] != print_["gan_step"]


def test_fingerprint_ignores_comments_and_falls_back_to_the_code_object():
    a = _student(1.0)
    ns = {"__name__": "__main__", "torch": torch, "course_step": _course_step}
    exec(compile("def gan_step(gan, real):\n    # a comment\n\n    out = "  # noqa: S102
                 "course_step(gan, real)\n    return {**out, 'extra': torch.tensor(1.0)}\n", "<cell2>", "exec"), ns)
    assert runs.function_fingerprint(a) == runs.function_fingerprint(ns["gan_step"])
    lam = eval("lambda x: x + 1", {"__name__": "__main__"})  # noqa: S307 -- no source file to read
    assert len(runs.function_fingerprint(lam)) == 16


def test_a_changed_function_starts_a_fresh_run_and_keeps_the_old_one(tmp_path, capsys):
    run_dir = tmp_path / "dcgan"
    first = _run(run_dir, _student(1.0))
    first.train(steps=4)
    assert first.trainer.step == 4
    assert json.loads((run_dir / "code.json").read_text()) == runs.code_fingerprint(first.model)
    capsys.readouterr()

    same = _run(run_dir, _student(1.0))  # the same code again (a new kernel): resumes
    assert same.trainer.step == 4
    same.train(steps=6)
    assert same.trainer.step == 6
    out = capsys.readouterr().out
    assert "starts again" not in out and "training with your functions: gan_step" in out

    fixed = _run(run_dir, _student(2.0))  # the student fixed gan_step: the resumed run is not theirs
    assert fixed.trainer.step == 6
    fixed.train(steps=3)
    out = capsys.readouterr().out
    assert "Your gan_step changed since the 6 steps" in out and "starts again from step 0" in out
    assert fixed.trainer.step == 3  # trained from scratch by the new code, not resumed at 6
    assert fixed.trainer.history.steps == [1, 2, 3]
    assert "extra" in fixed.trainer.history.terms and set(fixed.trainer.history.terms["extra"]) == {2.0}
    old = [p for p in tmp_path.iterdir() if p.name.startswith("dcgan.old-")]
    assert len(old) == 1 and any(old[0].glob("ckpt_00000006.pt"))  # the old run is kept whole
    assert json.loads((run_dir / "code.json").read_text()) == runs.code_fingerprint(fixed.model)


def test_a_run_of_the_course_code_is_not_resumed_by_a_student_function(tmp_path, capsys):
    run_dir = tmp_path / "dcgan"
    course = _run(run_dir)
    course.train(steps=2)
    assert not (run_dir / "code.json").exists()  # the course's own code records nothing
    mine = _run(run_dir, _student(1.0))
    mine.train(steps=2)
    out = capsys.readouterr().out
    assert "by the course's own functions, not by your gan_step" in out
    assert mine.trainer.history.steps == [1, 2]
    assert set(mine.trainer.history.terms["extra"]) == {1.0}


def test_fingerprint_follows_the_student_functions_that_a_registered_one_calls():
    ns = {"__name__": "__main__", "torch": torch, "course_step": _course_step}
    exec(compile("def helper(out):\n    return {**out, 'extra': torch.tensor(3.0)}\n"  # noqa: S102
                 "def gan_step(gan, real):\n    return helper(course_step(gan, real))\n", "<cell3>", "exec"), ns)
    gan = DCGAN(replace(config.DCGAN, image_size=8, nz=4, ngf=4, ndf=4, n_samples=4), device="cpu")
    gan.step_fn = ns["gan_step"]
    before = runs.code_fingerprint(gan)
    assert set(before) == {"gan_step", "helper"}
    exec(compile("def helper(out):\n    return {**out, 'extra': torch.tensor(4.0)}\n", "<cell4>", "exec"), ns)  # noqa: S102
    after = runs.code_fingerprint(gan)
    assert after["gan_step"] == before["gan_step"] and after["helper"] != before["helper"]
