"""Every check touched by issue 25 catches plausible wrong answers, and says so without giving the answer away.

For each wrong answer: the check raises :class:`ExerciseError`; its message contains no line of the
reference's source nor of the checker's; and what Jupyter shows (``_render_traceback_``) is that
message, with no frame of ``helpers``.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from helpers import cyclegan, dcgan
from helpers.exercises import ExerciseError, nb02, nb03, nb04, nb05, nb06
from helpers.layers import LSGANLoss, WeightedL1

pytestmark = pytest.mark.usefixtures("one_thread")


def bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def code_lines(*objects) -> set[str]:
    """The lines of code of ``objects``' source (no docstrings, comments or lines too short to be an answer)."""
    lines = set()
    for obj in objects:
        src = inspect.getsource(obj)
        in_doc = False
        for raw in src.splitlines():
            line = raw.strip()
            if line.startswith(('"""', "'''")):
                in_doc = not (line.count('"""') == 2 or line.count("'''") == 2) and not in_doc
                continue
            if in_doc or not line or line.startswith("#") or len(line) < 12:
                continue
            lines.add(line.split("  #")[0].strip())
    return lines


def assert_caught(check, fn, references, fragment):
    with pytest.raises(ExerciseError) as err:
        check(fn)
    message = str(err.value)
    assert fragment in message, message
    for line in code_lines(*references, inspect.unwrap(check)):
        assert line not in message, f"the message gives away {line!r}: {message}"
    shown = "\n".join(err.value._render_traceback_())
    assert message in shown
    assert "helpers/exercises" not in shown and "helpers/dcgan" not in shown
    for line in code_lines(inspect.unwrap(check)):
        assert line not in shown, f"Jupyter would show the checker's line {line!r}"
    return message


# --------------------------------------------------------------------------- notebook 02: gan_step


def step(*, detach_D=True, retain=False, detach_G=False, step_G="G", step_D="D", zero_G="before", order="DG",
         fresh_noise=False, plain=False):
    """The notebook's gan_step, with one switch per plausible mistake."""

    def gan_step(gan, real):
        amp = gan.precision
        z = torch.randn(real.shape[0], gan.nz, device=real.device)
        opts = {"G": gan.opt_G, "D": gan.opt_D, None: None}

        def backward(loss, retain_graph=False):
            if plain or retain_graph:
                loss.backward(retain_graph=retain_graph)
            else:
                amp.backward(loss)

        def opt_step(opt):
            opt.step() if plain else amp.step(opt)

        def d_turn():
            real_logits = gan.D(real)
            fake_logits = gan.D(fake.detach() if detach_D else fake)
            loss_D = gan.d_loss(real_logits, fake_logits)
            gan.opt_D.zero_grad(set_to_none=True)
            backward(loss_D, retain_graph=retain)
            if opts[step_D] is not None:
                opt_step(opts[step_D])
            return loss_D, real_logits, fake_logits

        def g_turn():
            x = gan.G(torch.randn_like(z)) if fresh_noise else fake
            loss_G = gan.g_loss(gan.D(x.detach() if detach_G else x))
            if zero_G == "before":
                gan.opt_G.zero_grad(set_to_none=True)
            backward(loss_G)
            if zero_G == "after":
                gan.opt_G.zero_grad(set_to_none=True)
            if opts[step_G] is not None:
                opt_step(opts[step_G])
            return loss_G

        fake = gan.G(z)
        if order == "GD":
            loss_G = g_turn()
            loss_D, r, f = d_turn()
        else:
            loss_D, r, f = d_turn()
            loss_G = g_turn()
        return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(), "D_x": torch.sigmoid(r.detach()).mean(),
                "D_G_z": torch.sigmoid(f.detach()).mean()}

    return gan_step


GAN_STEP_WRONG = [
    ("no detach in D's turn", step(detach_D=False), "cut its fakes off from the generator"),
    ("no detach, retain_graph=True", step(detach_D=False, retain=True), "sent a gradient into the generator"),
    ("both turns detached", step(detach_G=True), "generator's weights did not change: no gradient reached G"),
    ("opt_G never stepped", step(step_G=None), "generator's weights did not change: its optimiser is never stepped"),
    ("opt_D stepped in G's turn", step(step_G="D"), "the wrong optimiser"),
    ("opt_G stepped in D's turn", step(step_D="G"), "the wrong optimiser"),
    ("optimisers swapped", step(step_D="G", step_G="D"), "the wrong optimiser"),
    ("G's gradients cleared after backward", step(zero_G="after"), "its gradients were cleared after"),
    ("G's gradients never cleared", step(zero_G=None), "generator's gradients are never cleared"),
    ("generator first", step(order="GD"), "the generator went first"),
    ("new noise in G's turn", step(fresh_noise=True), "used new noise"),
    ("plain backward and step, no scaler", step(plain=True), "On a Colab T4"),
]


def test_the_right_gan_step_passes():
    assert "correct" in nb02.check_gan_step(step())


@pytest.mark.parametrize("name,fn,fragment", GAN_STEP_WRONG, ids=[w[0] for w in GAN_STEP_WRONG])
def test_gan_step_names_the_mistake(name, fn, fragment):
    assert_caught(nb02.check_gan_step, fn, [dcgan.DCGAN.train_step], fragment)


# --------------------------------------------------------------------------- notebook 02: the losses

LOSS_WRONG = [
    (nb02.check_discriminator_loss, lambda r, f: bce(r, 0.0) + bce(f, 1.0), "targets are swapped",
     dcgan.discriminator_loss),
    (nb02.check_discriminator_loss, lambda r, f: (bce(r, 1.0) + bce(f, 0.0)) / 2, "averaged the two terms",
     dcgan.discriminator_loss),
    (nb02.check_discriminator_loss, lambda r, f: bce(torch.sigmoid(r), 1.0) + bce(torch.sigmoid(f), 0.0),
     "applied a sigmoid", dcgan.discriminator_loss),
    (nb02.check_discriminator_loss, lambda r, f: (bce(r, 1.0) + bce(f, 0.0)).item(), "should return a torch tensor",
     dcgan.discriminator_loss),
    (nb02.check_generator_loss, lambda f: bce(f, 0.0), "wrong target", dcgan.generator_loss),
    (nb02.check_generator_loss, lambda f: -bce(f, 0.0), "minimax", dcgan.generator_loss),
    (nb02.check_minimax_generator_loss, lambda f: bce(f, 0.0), "sign is flipped", dcgan.generator_loss_minimax),
]


@pytest.mark.parametrize("check,fn,fragment,reference", LOSS_WRONG, ids=[f"{w[0].__name__}-{w[2]}" for w in LOSS_WRONG])
def test_loss_checks_name_the_mistake(check, fn, fragment, reference):
    assert_caught(check, fn, [reference], fragment)


def test_a_crash_in_the_students_code_shows_their_line_not_the_checker():
    def discriminator_loss(real_logits, fake_logits):
        return real_logits + fake_logits  # 64 against 48: a shape error

    message = assert_caught(nb02.check_discriminator_loss, discriminator_loss, [dcgan.discriminator_loss],
                            "discriminator_loss raised RuntimeError")
    with pytest.raises(ExerciseError) as err:
        nb02.check_discriminator_loss(discriminator_loss)
    shown = "\n".join(err.value._render_traceback_())
    assert "return real_logits + fake_logits" in shown and message in shown


# --------------------------------------------------------------------------- notebook 03: generator_losses


def generator_losses(*, detach_ab=False, detach_ba=False, detach_cycle=False, judge_swap=False):
    """The notebook's generator_losses, with one switch per plausible mistake."""

    def fn(model, real_a, real_b):
        fake_b, fake_a = model.G_AB(real_a), model.G_BA(real_b)
        judge_b, judge_a = (model.D_A, model.D_B) if judge_swap else (model.D_B, model.D_A)
        losses = {
            "G_GAN_A2B": model.gan_loss(judge_b(fake_b.detach() if detach_ab else fake_b), True),
            "G_GAN_B2A": model.gan_loss(judge_a(fake_a.detach() if detach_ba else fake_a), True),
            "G_cycle_A": model.cycle_loss(model.G_BA(fake_b.detach() if detach_cycle else fake_b), real_a),
            "G_cycle_B": model.cycle_loss(model.G_AB(fake_a), real_b),
        }
        if model.identity_weight > 0:
            losses["G_identity_A"] = model.identity_loss(model.G_BA(real_a), real_a)
            losses["G_identity_B"] = model.identity_loss(model.G_AB(real_b), real_b)
        return losses, fake_a, fake_b

    return fn


GEN_WRONG = [
    ("aged fakes detached before D_B", generator_losses(detach_ab=True), "gives G_AB no gradient"),
    ("rejuvenated fakes detached before D_A", generator_losses(detach_ba=True), "gives G_BA no gradient"),
    ("cycle cut in the middle", generator_losses(detach_cycle=True), "gives G_AB no gradient"),
    ("judges swapped", generator_losses(judge_swap=True), "must be judged by D_B"),
]


def test_the_right_generator_losses_pass():
    assert "correct" in nb03.check_generator_losses(generator_losses())


@pytest.mark.parametrize("name,fn,fragment", GEN_WRONG, ids=[w[0] for w in GEN_WRONG])
def test_generator_losses_names_the_mistake(name, fn, fragment):
    assert_caught(nb03.check_generator_losses, fn, [cyclegan.generator_losses], fragment)


LSGAN_WRONG = [
    (nb03.check_lsgan_loss, lambda s, real: (s - (0.0 if real else 1.0)).pow(2).mean(), "wrong target", LSGANLoss),
    (nb03.check_lsgan_loss, lambda s, real: (s - float(real)).abs().mean(), "absolute error", LSGANLoss),
    (nb03.check_cycle_loss, lambda r, o, w: (r - o).abs().mean(), "weight is missing", WeightedL1),
    (nb03.check_cycle_loss, lambda r, o, w: w * (r - o).pow(2).mean(), "squared error", WeightedL1),
]


@pytest.mark.parametrize("check,fn,fragment,reference", LSGAN_WRONG, ids=[w[2] for w in LSGAN_WRONG])
def test_nb03_loss_checks_name_the_mistake(check, fn, fragment, reference):
    assert_caught(check, fn, [reference], fragment)


# --------------------------------------------------------------------------- notebook 04: the one-hot label

NOISE_WRONG = [
    ("one_hot without num_classes", lambda z, y, k: torch.cat([z, F.one_hot(y).to(z.dtype)], 1), "plus one"),
    ("label as a number", lambda z, y, k: torch.cat([z, y[:, None].to(z.dtype)], 1), "single number"),
    ("one-hot first", lambda z, y, k: torch.cat([F.one_hot(y, k).to(z.dtype), z], 1), "noise first"),
    ("noise only", lambda z, y, k: z.clone(), "only the noise"),
    ("flipped one-hot", lambda z, y, k: torch.cat([z, 1 - F.one_hot(y, k).to(z.dtype)], 1), "flipped"),
]


@pytest.mark.parametrize("name,fn,fragment", NOISE_WRONG, ids=[w[0] for w in NOISE_WRONG])
def test_condition_noise_names_the_mistake(name, fn, fragment):
    assert_caught(nb04.check_condition_noise, fn, [dcgan.condition_noise], fragment)


def _maps(h, y, k):
    return F.one_hot(y, k).to(h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:])


FEATURES_WRONG = [
    ("one_hot without num_classes",
     lambda h, y, k: torch.cat([h, F.one_hot(y).to(h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1),
     "plus one"),
    ("maps first", lambda h, y, k: torch.cat([_maps(h, y, k), h], 1), "come before the features"),
    ("all-ones maps", lambda h, y, k: torch.cat([h, torch.ones_like(_maps(h, y, k))], 1), "all ones"),
    ("one map with the label", lambda h, y, k: torch.cat([h, y.to(h.dtype)[:, None, None, None].expand(
        -1, 1, *h.shape[2:])], 1), "one map holding the label"),
]


@pytest.mark.parametrize("name,fn,fragment", FEATURES_WRONG, ids=[w[0] for w in FEATURES_WRONG])
def test_condition_features_names_the_mistake(name, fn, fragment):
    assert_caught(nb04.check_condition_features, fn, [dcgan.condition_features], fragment)


def test_a_missing_num_classes_would_have_crashed_later():
    """Why the check exists: the one-hot without num_classes breaks the generator when a batch lacks a group."""
    gen = dcgan.Generator(nz=4, ngf=4, n_classes=3, image_size=8)
    gen.condition_noise = lambda z, y, k: torch.cat([z, F.one_hot(y).to(z.dtype)], 1)
    with pytest.raises(RuntimeError):
        gen(torch.randn(2, 4), torch.tensor([0, 0]))


# --------------------------------------------------------------------------- notebook 06: AdaIN


def _inorm(x, dims=(2, 3), unbiased=False):
    return (x - x.mean(dims, keepdim=True)) / (x.var(dims, keepdim=True, unbiased=unbiased) + 1e-5).sqrt()


ADAIN_WRONG = [
    ("scale gamma", lambda x, g, b: _inorm(x) * g[:, :, None, None] + b[:, :, None, None], "(1 + gamma)"),
    ("no normalisation", lambda x, g, b: x * (1 + g[:, :, None, None]) + b[:, :, None, None], "not normalised"),
    ("layer norm", lambda x, g, b: _inorm(x, (1, 2, 3)) * (1 + g[:, :, None, None]) + b[:, :, None, None],
     "layer norm"),
    ("unbiased", lambda x, g, b: _inorm(x, unbiased=True) * (1 + g[:, :, None, None]) + b[:, :, None, None],
     "unbiased"),
    ("no broadcast", lambda x, g, b: _inorm(x) * (1 + g) + b, "adain raised RuntimeError"),
]


@pytest.mark.parametrize("name,fn,fragment", ADAIN_WRONG, ids=[w[0] for w in ADAIN_WRONG])
def test_adain_names_the_mistake(name, fn, fragment):
    from helpers.agegan import adain

    assert_caught(nb06.check_adain, fn, [adain], fragment)


# --------------------------------------------------------------------------- what Jupyter shows


def test_a_wrong_answer_in_notebook_02_shows_no_line_of_the_checker(tmp_path, monkeypatch):
    """Notebook 02, trimmed to its setup, imports and exercise 3, with a wrong gan_step, run by a real kernel."""
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[1]
    nb = nbformat.read(root / "notebooks" / "02_gan_basics.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup, imports = code[0], next(c for c in code if "from helpers.exercises import nb02" in c.source)
    exercise = next(c for c in code if c.source.startswith("def gan_step"))
    check = next(c for c in code if "nb02.check_gan_step(" in c.source)
    wrong = exercise.source.replace("gan.D(fake.detach())", "gan.D(fake)")
    assert wrong != exercise.source
    wrong = wrong.replace("amp.backward(loss_D)", "loss_D.backward(retain_graph=True)")
    crash = "def discriminator_loss(real_logits, fake_logits):\n    return real_logits + fake_logits\n"
    cells = [setup, imports, nbformat.v4.new_code_cell(wrong), check,
             nbformat.v4.new_code_cell(crash), nbformat.v4.new_code_cell("nb02.check_discriminator_loss(discriminator_loss)")]
    small = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in cells],
                                     metadata=nb.metadata)
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("PYTHONPATH", str(root))
    NotebookClient(small, timeout=300, allow_errors=True, resources={"metadata": {"path": str(root / "notebooks")}},
                   kernel_name="python3").execute()

    checker = code_lines(nb02, dcgan.DCGAN.train_step)
    for index, expected in [(3, "sent a gradient into the generator"), (5, "discriminator_loss raised RuntimeError")]:
        errors = [o for o in small.cells[index].outputs if o.output_type == "error"]
        assert errors, small.cells[index].outputs
        shown = "\n".join(errors[0].traceback)
        assert errors[0].ename == "ExerciseError" and expected in shown, shown
        assert "helpers/exercises" not in shown
        for line in checker:
            assert line not in shown, f"the cell shows the checker's line {line!r}:\n{shown}"
    assert "return real_logits + fake_logits" in "\n".join(small.cells[5].outputs[-1].traceback)


@pytest.mark.parametrize("name", ["02_gan_basics", "03_cyclegan", "06_age_modulated_gan"])
def test_reference_code_is_shown_only_after_the_training(name):
    """The course's versions appear folded (reveal), after the cell that trains with the student's code."""
    from pathlib import Path

    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / f"{name}.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    trained = next(i for i, s in enumerate(code) if "history = run.train(" in s)
    shown = [i for i, s in enumerate(code) if "reveal(" in s]
    assert shown and min(shown) > trained
    assert not any("getsource" in s for s in code), "print reference code with reveal(), after the training"


def test_reveal_folds_the_source():
    from helpers.exercises import reveal

    shown = reveal(dcgan.discriminator_loss, title="The course's loss")
    block = getattr(shown, "data", shown)
    assert block.startswith("<details><summary>The course&#x27;s loss: click to open</summary>")
    assert "def discriminator_loss" in block and block.endswith("</details>")


# --------------------------------------------------------------------------- notebook 02: the generator's up-block

nn = torch.nn


def block(conv=None, norm="bn", act="relu", order=("conv", "norm", "act"), k=4, s=2, p=1, bias=False):
    """A plausible up_block, with one switch per mistake."""

    def up_block(c_in, c_out):
        layers = {
            "conv": conv(c_in, c_out) if conv else nn.ConvTranspose2d(c_in, c_out, k, s, p, bias=bias),
            "norm": {"bn": nn.BatchNorm2d(c_out), "in": nn.InstanceNorm2d(c_out, affine=True), None: None}[norm],
            "act": {"relu": nn.ReLU(True), "leaky": nn.LeakyReLU(0.2, True), "tanh": nn.Tanh(), None: None}[act],
        }
        return nn.Sequential(*[layers[name] for name in order if layers[name] is not None])

    return up_block


UP_BLOCK_WRONG = [
    ("padding 0", block(p=0), "the padding is wrong"),
    ("stride 1", block(s=1), "does not double the size"),
    ("kernel 3", block(k=3), "with a 3x3 kernel"),
    ("kernel 2, stride 2, padding 0 (right size)", block(k=2, p=0), "a 2x2 kernel paints"),
    ("Conv2d", block(conv=lambda i, o: nn.Conv2d(i, o, 4, 2, 1, bias=False)), "ordinary convolution"),
    ("no batch norm", block(norm=None), "no normalisation"),
    ("instance norm", block(norm="in"), "normalises with InstanceNorm2d"),
    ("LeakyReLU", block(act="leaky"), "LeakyReLU is the discriminator's"),
    ("tanh", block(act="tanh"), "uses Tanh"),
    ("no activation", block(act=None), "no activation"),
    ("activation before the norm", block(order=("conv", "act", "norm")), "come in the order"),
    ("a bias before the batch norm", block(bias=True), "has a bias"),
    ("halves instead of doubling the channels wrongly",
     lambda c_in, c_out: block()(c_in, c_in), "must take c_in channels and give c_out"),
]


def test_the_right_up_block_passes_and_builds_the_generator():
    from dataclasses import replace

    from helpers import config, runs

    assert "correct" in nb02.check_up_block(block())
    s = replace(config.DCGAN, image_size=16, nz=4, ngf=4, ndf=4, n_samples=4)
    mine, course = dcgan.DCGAN(s, up_block=block()), dcgan.DCGAN(s)
    assert mine.G.up_block is not None and list(mine.G.state_dict()) == list(course.G.state_dict())
    assert mine.G(torch.randn(2, 4)).shape == (2, 3, 16, 16)
    assert any(name.endswith("up_block") for name in runs.code_fingerprint(mine))  # a changed block: a fresh run


@pytest.mark.parametrize("name,fn,fragment", UP_BLOCK_WRONG, ids=[w[0] for w in UP_BLOCK_WRONG])
def test_up_block_names_the_mistake(name, fn, fragment):
    assert_caught(nb02.check_up_block, fn, [dcgan.up_block], fragment)


# --------------------------------------------------------------------------- notebook 07: FID from features


def fid_variant(mistake: str = ""):
    """A plausible fid_from_features written with numpy and scipy, with one switch per mistake."""
    import numpy as np
    from scipy import linalg

    def fid_from_features(real, fake):
        axis = 1 if mistake == "mean over features" else 0
        mu_r, mu_g = real.mean(axis), fake.mean(axis)
        rowvar = mistake == "rowvar"
        ddof = 0 if mistake == "ddof" else 1
        s_r, s_g = np.cov(real, rowvar=rowvar, ddof=ddof), np.cov(fake, rowvar=rowvar, ddof=ddof)
        if mistake == "elementwise sqrt":
            with np.errstate(invalid="ignore"):  # the mistake: negative entries give NaN
                cross = np.sqrt(s_r @ s_g)
        elif mistake == "no sqrt":
            cross = s_r @ s_g
        elif mistake == "separate roots":
            cross = linalg.sqrtm(s_r).real @ linalg.sqrtm(s_g).real
        else:
            cross = linalg.sqrtm(s_r @ s_g)
            if mistake != "complex":
                cross = cross.real
        diff = np.sum((mu_r - mu_g) ** 2)
        if mistake == "norm":
            diff = np.sqrt(diff)
        if mistake == "no mean":
            diff = 0.0
        two = {"no 2": 1.0, "plus": -2.0}.get(mistake, 2.0)
        value = diff + np.trace(s_r) + np.trace(s_g) - two * np.trace(cross)
        if mistake == "complex":
            return complex(value) + 1e-9j
        if mistake == "per feature":
            return (mu_r - mu_g) ** 2
        return value

    return fid_from_features


def test_the_right_fid_passes_and_agrees_with_torchmetrics():
    from helpers.exercises import nb07

    assert "correct" in nb07.check_fid(fid_variant())


@pytest.mark.parametrize("mistake, fragment", [
    ("no mean", "distance between the two means"),
    ("norm", "not squared"),
    ("no 2", "factor 2"),
    ("plus", "wrong sign"),
    ("no sqrt", "without its square root"),
    ("separate roots", "unless the two commute"),
    ("ddof", "N - 1"),
    ("rowvar", "rowvar=False"),
    ("mean over features", "over the faces"),
    ("elementwise sqrt", "each *entry*"),
    ("complex", "complex number"),
    ("per feature", "one number"),
])
def test_fid_names_the_mistake(mistake, fragment):
    from helpers import metrics
    from helpers.exercises import nb07

    assert_caught(nb07.check_fid, fid_variant(mistake), [metrics.fid_from_features], fragment)


# --------------------------------------------------------------------------- notebook 03: the PatchGAN discriminator


def patch_variant(mistake: str = ""):
    """A plausible patch_discriminator, with one switch per mistake."""
    from torch import nn

    def patch_discriminator(ndf, n_layers):
        k = 3 if mistake == "kernel 3" else 4
        pad = 0 if mistake == "no padding" else 1

        def act():
            if mistake == "relu":
                return nn.ReLU(True)
            return nn.LeakyReLU() if mistake == "slope" else nn.LeakyReLU(0.2, True)

        def norm(c):
            return nn.BatchNorm2d(c) if mistake == "batch norm" else nn.InstanceNorm2d(c)

        layers = [nn.Conv2d(3, ndf, k, 2, pad)] + ([norm(ndf)] if mistake == "first norm" else []) + [act()]
        ch = ndf
        last = n_layers - 1 if mistake == "no widening layer" else n_layers
        for n in range(1, last + 1):
            out = ndf if mistake == "constant width" else ndf * min(2**n, 8)
            stride = 2 if (n < n_layers or mistake == "all stride 2") else 1
            layers += [nn.Conv2d(ch, out, k, stride, pad, bias=mistake == "bias"), norm(out), act()]
            ch = out
        layers += [nn.Conv2d(ch, 1, k, 1, pad)]
        if mistake == "sigmoid":
            layers += [nn.Sigmoid()]
        if mistake == "norm at the end":
            layers += [nn.InstanceNorm2d(1)]
        return nn.Sequential(*layers)

    return patch_discriminator


def test_the_right_patch_discriminator_passes_and_builds_both_discriminators():
    from dataclasses import replace

    from helpers import config, runs

    fn = patch_variant()
    assert "correct" in nb03.check_patch_discriminator(fn)
    s = replace(config.CYCLEGAN_CPU, ngf=4, ndf=8, n_blocks=1)
    mine, course = cyclegan.CycleGAN(s, discriminator=fn), cyclegan.CycleGAN(s)
    for name in ("D_A", "D_B"):
        assert list(mine.networks[name].state_dict()) == list(course.networks[name].state_dict())
        for a, b in zip(mine.networks[name].state_dict().values(), course.networks[name].state_dict().values()):
            assert torch.equal(a, b)  # the same seed gives the same starting weights, whoever wrote the layers
    assert any(k.endswith("patch_discriminator") for k in runs.code_fingerprint(mine))  # a changed one: a fresh run


@pytest.mark.parametrize("mistake, fragment", [
    ("sigmoid", "sigmoid"),
    ("batch norm", "instance norm"),
    ("first norm", "first layer has no norm"),
    ("relu", "LeakyReLU"),
    ("slope", "0.2"),
    ("all stride 2", "patch of the input"),
    ("kernel 3", "4x4 kernels"),
    ("no padding", "pads by 1 pixel"),
    ("bias", "cannot learn"),
    ("constant width", "double at each layer"),
    ("norm at the end", "raw output"),
    ("no widening layer", "convolutions"),
])
def test_patch_discriminator_names_the_mistake(mistake, fragment):
    assert_caught(nb03.check_patch_discriminator, patch_variant(mistake), [cyclegan.patch_discriminator], fragment)


# --------------------------------------------------------------------------- notebook 06: the modulated residual block


def res_block_variant(mistake: str = ""):
    """A plausible modulated_res_block, with one switch per mistake."""

    def modulated_res_block(block, h, mod1, mod2):
        first, second = {"swapped": (mod2, mod1), "mod1 twice": (mod1, mod1), "mod2 twice": (mod2, mod2)}.get(
            mistake, (mod1, mod2))
        if mistake == "norm first":
            y = block.conv1(block.norm1(h, *first)).relu()
            out = block.conv2(block.norm2(y, *second))
        else:
            y = block.norm1(block.conv1(h), *first)
            y = y if mistake == "no relu" else torch.relu(y)
            out = block.norm2(block.conv2(y), *second)
        if mistake == "relu at the end of the branch":
            out = torch.relu(out)
        if mistake == "no skip":
            return out
        if mistake == "detached skip":
            return h.detach() + out
        total = h + out
        return torch.relu(total) if mistake == "relu after the sum" else total

    return modulated_res_block


def test_the_right_res_block_passes_and_trains_the_generator():
    from dataclasses import replace

    from helpers import agegan, config, runs

    fn = res_block_variant()
    assert "correct" in nb06.check_res_block(fn)
    s = replace(config.AGEGAN_CPU, image_size=16, ngf=4, ndf=4, style_dim=8)
    gan = agegan.AgeGAN(s).use(res_block=fn)
    blocks = [m for m in gan.G.modules() if isinstance(m, agegan._ModulatedResBlock)]
    assert blocks and all(b.wiring is fn for b in blocks)
    assert any(k.endswith("modulated_res_block") for k in runs.code_fingerprint(gan))  # a changed one: a fresh run


@pytest.mark.parametrize("mistake, fragment", [
    ("no skip", "no skip connection"),
    ("relu after the sum", "follows the sum"),
    ("relu at the end of the branch", "never take away"),
    ("swapped", "swapped"),
    ("mod1 twice", "own pair"),
    ("mod2 twice", "own pair"),
    ("no relu", "collapse"),
    ("norm first", "before their convolutions"),
    ("detached skip", "skip connection was detached"),
])
def test_res_block_names_the_mistake(mistake, fragment):
    from helpers import agegan

    assert_caught(nb06.check_res_block, res_block_variant(mistake), [agegan.modulated_res_block], fragment)


# --------------------------------------------------------------------------- notebook 04: the generator's input block


def input_block_variant(mistake: str = ""):
    """A plausible input_block, with one switch per mistake."""
    from torch import nn

    def input_block(nz, n_classes, c_out):
        n_in = nz if mistake == "noise only" else nz + n_classes
        k, stride, pad = {"up block copy": (4, 2, 1), "kernel 3": (3, 1, 0), "padding 1": (4, 1, 1)}.get(mistake, (4, 1, 0))
        if mistake == "linear":
            return nn.Sequential(nn.Flatten(), nn.Linear(n_in, c_out * 16), nn.Unflatten(1, (c_out, 4, 4)))
        conv = (nn.Conv2d if mistake == "conv2d" else nn.ConvTranspose2d)(n_in, c_out, k, stride, pad,
                                                                          bias=mistake == "bias")
        act = {"leaky": nn.LeakyReLU(0.2), "tanh": nn.Tanh()}.get(mistake, nn.ReLU(True))
        layers = [conv] + ([] if mistake == "no norm" else [nn.BatchNorm2d(c_out)]) + [act]
        return nn.Sequential(*layers)

    return input_block


def test_the_right_input_block_passes_and_builds_the_generator():
    from dataclasses import replace

    from helpers import cdcgan, config, runs

    fn = input_block_variant()
    assert "correct" in nb04.check_input_block(fn)
    s = replace(config.CDCGAN, ngf=8, ndf=8, nz=16)
    torch.manual_seed(0)
    mine = cdcgan.ConditionalDCGAN(s, input_block=fn)
    torch.manual_seed(0)
    course = cdcgan.ConditionalDCGAN(s)
    assert list(mine.G.state_dict()) == list(course.G.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(mine.G.state_dict().values(), course.G.state_dict().values()))
    assert any(k.endswith("input_block") for k in runs.code_fingerprint(mine))  # a changed one: a fresh run


@pytest.mark.parametrize("mistake, fragment", [
    ("noise only", "one-hot label"),
    ("up block copy", "not 4x4"),
    ("kernel 3", "not 4x4"),
    ("padding 1", "not 4x4"),
    ("conv2d", "transposed convolution"),
    ("linear", "linear layer"),
    ("bias", "cannot learn"),
    ("leaky", "LeakyReLU"),
    ("tanh", "tanh"),
    ("no norm", "no normalisation"),
])
def test_input_block_names_the_mistake(mistake, fragment):
    assert_caught(nb04.check_input_block, input_block_variant(mistake), [dcgan.input_block], fragment)


# --------------------------------------------------------------------------- notebook 05: the encoder's down-block


def down_block_variant(mistake: str = ""):
    """A plausible down_block, with one switch per mistake."""
    from torch import nn

    def down_block(c_in, c_out, kernel_size):
        k = 4 if mistake == "kernel 4" else kernel_size
        pad = 2 if mistake == "fixed padding" else (1 if mistake == "padding 1" else k // 2)
        stride = 1 if mistake == "stride 1" else 2
        if mistake == "transposed":
            conv = nn.ConvTranspose2d(c_in, c_out, k, 2, pad, output_padding=1, bias=False)
        else:
            conv = nn.Conv2d(c_in, c_out, k, stride, pad, bias=mistake == "bias")
        act = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid()}.get(mistake, nn.ReLU(True))
        norm = [] if mistake == "no norm" else [nn.InstanceNorm2d(c_out) if mistake == "instance norm" else nn.BatchNorm2d(c_out)]
        layers = [conv, act, *norm] if mistake == "act before norm" else [conv, *norm, act]
        return nn.Sequential(*layers)

    return down_block


def test_the_right_down_block_passes_and_builds_the_encoder():
    from helpers import encoder, runs

    fn = down_block_variant()
    assert "correct" in nb05.check_down_block(fn)
    torch.manual_seed(0)
    mine = encoder.Encoder(8, 4, 16, 5, block=fn)
    torch.manual_seed(0)
    course = encoder.Encoder(8, 4, 16, 5)
    assert list(mine.state_dict()) == list(course.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), course.state_dict().values()))
    assert "down_block" in runs.code_fingerprint(mine) or any(k.endswith("down_block") for k in runs.code_fingerprint(mine))


@pytest.mark.parametrize("mistake, fragment", [
    ("kernel 4", "kernel_size it is given"),
    ("fixed padding", "follow the kernel size"),
    ("padding 1", "follow the kernel size"),
    ("stride 1", "does not halve"),
    ("transposed", "transposed convolution grows"),
    ("bias", "cannot learn"),
    ("tanh", "ReLU"),
    ("sigmoid", "ReLU"),
    ("no norm", "no normalisation"),
    ("instance norm", "batch norm"),
    ("act before norm", "order"),
])
def test_down_block_names_the_mistake(mistake, fragment):
    from helpers import encoder

    assert_caught(nb05.check_down_block, down_block_variant(mistake), [encoder.down_block], fragment)
