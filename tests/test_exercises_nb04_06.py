"""The exercise checks of notebooks 04, 05 and 06: each passes a correct answer and names the mistake in wrong ones.

The correct answers here are written the way a student would write them (the notebooks' solutions),
not the reference functions the checks compare with.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers.exercises import ExerciseError
from helpers.exercises import nb04, nb05, nb06

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# --------------------------------------------------------------------------- notebook 04

def noise_ok(z, labels, n_classes):
    return torch.cat([z, F.one_hot(labels, n_classes).to(z.dtype)], dim=1)


def features_ok(h, labels, n_classes):
    B, _, H, W = h.shape
    maps = F.one_hot(labels, n_classes).to(h.dtype).view(B, n_classes, 1, 1).expand(B, n_classes, H, W)
    return torch.cat([h, maps], dim=1)


def paired_ok(pred):
    K = pred.shape[0]
    return (pred == torch.arange(K).numpy()[:, None]).all(axis=0).mean()


# --------------------------------------------------------------------------- notebook 05

def latent_ok(z_hat, z):
    return ((z_hat - z) ** 2).mean()


def image_ok(E, G, real, labels):
    return (G(E(real), labels) - real).abs().mean()


def refine_ok(G, z, x, y, opt, lambda_prior):
    err = (G(z, y) - x).abs().mean(dim=(1, 2, 3))
    loss = (err + lambda_prior * (z ** 2).mean(dim=1)).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return err.detach()


# --------------------------------------------------------------------------- notebook 06

def adain_ok(x, gamma, beta):
    mu = x.mean(dim=(2, 3), keepdim=True)
    sigma = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt()
    return (1 + gamma[:, :, None, None]) * (x - mu) / sigma + beta[:, :, None, None]


def age_D_ok(real_logits, source, fake_logits, target):
    return F.cross_entropy(real_logits, source)


def age_G_ok(fake_logits, source, target):
    return F.cross_entropy(fake_logits, target)


def cycle_ok(G_back, real, source, fake, target):
    return F.l1_loss(G_back(fake, source), real)


def aux_ok(real_logits, source, fake_logits, target):
    return (F.cross_entropy(real_logits, source) + F.cross_entropy(fake_logits, source)) / 2


CORRECT = [
    (nb04.check_condition_noise, noise_ok),
    (nb04.check_condition_features, features_ok),
    (nb04.check_paired_rate, paired_ok),
    (nb05.check_latent_loss, latent_ok),
    (nb05.check_image_loss, image_ok),
    (nb05.check_refine_step, refine_ok),
    (nb06.check_adain, adain_ok),
    (nb06.check_age_loss_D, age_D_ok),
    (nb06.check_age_loss_G, age_G_ok),
    (nb06.check_cycle_loss, cycle_ok),
    (nb06.check_aux_loss_C, aux_ok),
]


@pytest.mark.parametrize("check, answer", CORRECT, ids=[c.__name__ for c, _ in CORRECT])
def test_a_correct_answer_passes(check, answer, capsys):
    assert check(answer).startswith("correct")
    assert "correct" in capsys.readouterr().out


def _refine(err_of=None, prior=1.0, reduce="sum", zero=True, step=True, detach=True, after=False):
    def fn(G, z, x, y, opt, lambda_prior):
        err = err_of(G(z, y), x) if err_of else (G(z, y) - x).abs().mean(dim=(1, 2, 3))
        per_face = err + prior * lambda_prior * (z ** 2).mean(1)
        loss = per_face.sum() if reduce == "sum" else per_face.mean()
        if zero:
            opt.zero_grad()
        loss.backward()
        if step:
            opt.step()
        if after:
            with torch.no_grad():
                return (G(z, y) - x).abs().mean(dim=(1, 2, 3))
        return err.detach() if detach else err
    return fn


def _adain(norm_dims=(2, 3), one_plus=True, unbiased=False, swap=False, divide=True, detach=False):
    def fn(x, gamma, beta):
        if swap:
            gamma, beta = beta, gamma
        if detach:
            gamma, beta = gamma.detach(), beta.detach()
        mu = x.mean(dim=norm_dims, keepdim=True)
        h = x - mu
        if divide:
            h = h / (x.var(dim=norm_dims, keepdim=True, unbiased=unbiased) + 1e-5).sqrt()
        scale = (1 + gamma if one_plus else gamma)[:, :, None, None]
        return scale * h + beta[:, :, None, None]
    return fn


WRONG = [
    # notebook 04: the label on the noise
    ("noise: only the one-hot", nb04.check_condition_noise, lambda z, y, k: F.one_hot(y, k).float(), "only the one-hot"),
    ("noise: label as a number", nb04.check_condition_noise, lambda z, y, k: torch.cat([z, y[:, None].float()], 1),
     "single number"),
    ("noise: one-hot first", nb04.check_condition_noise, lambda z, y, k: torch.cat([F.one_hot(y, k).float(), z], 1),
     "comes first"),
    ("noise: three classes hard-coded", nb04.check_condition_noise,
     lambda z, y, k: torch.cat([z, F.one_hot(y, 3).float()], 1), "expected (4, 8)"),
    ("noise: in place", nb04.check_condition_noise, lambda z, y, k: torch.cat([z.mul_(1.0).add_(1.0), F.one_hot(y, k).float()], 1),
     "in place"),
    # notebook 04: the label maps of the discriminator
    ("maps: not expanded", nb04.check_condition_features,
     lambda h, y, k: torch.cat([h, F.one_hot(y, k).float()[:, :, None, None]], 1), "expand"),
    ("maps: one map with the label", nb04.check_condition_features,
     lambda h, y, k: torch.cat([h, y.float()[:, None, None, None].expand(-1, 1, *h.shape[2:])], 1), "one map holding"),
    ("maps: first", nb04.check_condition_features,
     lambda h, y, k: torch.cat([features_ok(h, y, k)[:, h.shape[1]:], h], 1), "come before"),
    ("maps: along the batch", nb04.check_condition_features,
     lambda h, y, k: torch.cat([h, torch.zeros(1, *h.shape[1:])], 0), "batch size"),
    # notebook 04: the paired test
    ("paired: any", nb04.check_paired_rate, lambda p: (p == torch.arange(p.shape[0]).numpy()[:, None]).any(0).mean(),
     "*any* label"),
    ("paired: the agreement", nb04.check_paired_rate, lambda p: (p == torch.arange(p.shape[0]).numpy()[:, None]).mean(),
     "label agreement"),
    ("paired: a count", nb04.check_paired_rate, lambda p: (p == torch.arange(p.shape[0]).numpy()[:, None]).all(0).sum(),
     "a count"),
    ("paired: two groups hard-coded", nb04.check_paired_rate, lambda p: ((p[0] == 0) & (p[1] == 1)).mean(),
     "different numbers"),
    # notebook 05: the noise-space loss
    ("latent: sum", nb05.check_latent_loss, lambda a, b: ((a - b) ** 2).sum(), "summed every"),
    ("latent: sum over coordinates", nb05.check_latent_loss, lambda a, b: ((a - b) ** 2).sum(1).mean(),
     "summed over the noise coordinates"),
    ("latent: L1", nb05.check_latent_loss, lambda a, b: (a - b).abs().mean(), "*absolute*"),
    ("latent: norm", nb05.check_latent_loss, lambda a, b: (a - b).norm(dim=1).mean(), "without squaring"),
    ("latent: detached", nb05.check_latent_loss, lambda a, b: ((a.detach() - b) ** 2).mean(), "no gradient"),
    ("latent: a float", nb05.check_latent_loss, lambda a, b: ((a - b) ** 2).mean().item(), "torch tensor"),
    # notebook 05: the image-space loss
    ("image: other label", nb05.check_image_loss, lambda E, G, x, y: (G(E(x), 1 - y) - x).abs().mean(), "wrong age label"),
    ("image: squared", nb05.check_image_loss, lambda E, G, x, y: ((G(E(x), y) - x) ** 2).mean(), "squared error"),
    ("image: no_grad", nb05.check_image_loss, lambda E, G, x, y: (G(E(x).detach(), y) - x).abs().mean(), "no gradient"),
    ("image: sum", nb05.check_image_loss, lambda E, G, x, y: (G(E(x), y) - x).abs().sum(), "summed"),
    # notebook 05: one refinement step
    ("refine: no prior", nb05.check_refine_step, _refine(prior=0.0), "prior term is missing"),
    ("refine: prior sign", nb05.check_refine_step, _refine(prior=-1.0), "wrong sign"),
    ("refine: mean over faces", nb05.check_refine_step, _refine(reduce="mean"), "averaged the faces"),
    ("refine: squared error", nb05.check_refine_step, _refine(err_of=lambda a, b: ((a - b) ** 2).mean(dim=(1, 2, 3))),
     "squared error"),
    ("refine: no zero_grad", nb05.check_refine_step, _refine(zero=False), "clear the gradient"),
    ("refine: no step", nb05.check_refine_step, _refine(step=False), "step the optimiser"),
    ("refine: not detached", nb05.check_refine_step, _refine(detach=False), "detach"),
    ("refine: errors after the step", nb05.check_refine_step, _refine(after=True), "after the step"),
    ("refine: mean error", nb05.check_refine_step,
     lambda *a: _refine()(*a).mean(), "each face's own error"),
    # notebook 06: AdaIN
    ("adain: gamma without 1 +", nb06.check_adain, _adain(one_plus=False), "(1 + gamma)"),
    ("adain: no division", nb06.check_adain, _adain(divide=False), "did not divide"),
    ("adain: layer norm", nb06.check_adain, _adain(norm_dims=(1, 2, 3)), "layer norm"),
    ("adain: batch norm", nb06.check_adain, _adain(norm_dims=(0, 2, 3)), "batch norm"),
    ("adain: unbiased", nb06.check_adain, _adain(unbiased=True), "unbiased"),
    ("adain: swapped", nb06.check_adain, _adain(swap=True), "swapped"),
    ("adain: detached", nb06.check_adain, _adain(detach=True), "no gradient"),
    ("adain: no broadcast", nb06.check_adain, lambda x, g, b: F.instance_norm(x) * (1 + g) + b, "trailing axes"),
    ("adain: not normalised", nb06.check_adain, lambda x, g, b: x * (1 + g[:, :, None, None]) + b[:, :, None, None],
     "not normalised"),
    # notebook 06: the age losses
    ("age D: with fakes", nb06.check_age_loss_D,
     lambda r, s, f, t: F.cross_entropy(r, s) + F.cross_entropy(f, t), "also taught the age head on the fakes"),
    ("age D: fakes only", nb06.check_age_loss_D, lambda r, s, f, t: F.cross_entropy(f, t), "used the fakes"),
    ("age D: target", nb06.check_age_loss_D, lambda r, s, f, t: F.cross_entropy(r, t), "own group"),
    ("age D: softmax twice", nb06.check_age_loss_D, lambda r, s, f, t: F.cross_entropy(r.softmax(1), s), "softmax"),
    ("age G: source", nb06.check_age_loss_G, lambda f, s, t: F.cross_entropy(f, s), "*target* age"),
    ("age G: away from source", nb06.check_age_loss_G, lambda f, s, t: -F.cross_entropy(f, s), "away from"),
    ("age G: nll on logits", nb06.check_age_loss_G, lambda f, s, t: F.nll_loss(f, t), "log-probabilities"),
    ("age G: sum", nb06.check_age_loss_G, lambda f, s, t: F.cross_entropy(f, t, reduction="sum"), "summed"),
    # notebook 06: the cycle
    ("cycle: to the target", nb06.check_cycle_loss, lambda G, x, s, f, t: F.l1_loss(G(f, t), x), "*source* age"),
    ("cycle: the identity term", nb06.check_cycle_loss, lambda G, x, s, f, t: F.l1_loss(G(x, s), x), "identity term"),
    ("cycle: against the fake", nb06.check_cycle_loss, lambda G, x, s, f, t: F.l1_loss(G(f, s), f), "with the fake"),
    ("cycle: detached fake", nb06.check_cycle_loss, lambda G, x, s, f, t: F.l1_loss(G(f.detach(), s), x),
     "do not detach the fake"),
    ("cycle: squared", nb06.check_cycle_loss, lambda G, x, s, f, t: F.mse_loss(G(f, s), x), "squared error"),
    # notebook 06: the auxiliary classifier of the real-face setting
    ("aux: fakes as target", nb06.check_aux_loss_C,
     lambda r, s, f, t: (F.cross_entropy(r, s) + F.cross_entropy(f, t)) / 2, "labelled the fakes with their targets"),
    ("aux: real only", nb06.check_aux_loss_C, lambda r, s, f, t: F.cross_entropy(r, s), "only the real faces"),
    ("aux: added", nb06.check_aux_loss_C, lambda r, s, f, t: F.cross_entropy(r, s) + F.cross_entropy(f, s),
     "you added the two terms"),
    ("aux: away from target", nb06.check_aux_loss_C,
     lambda r, s, f, t: (F.cross_entropy(r, s) - F.cross_entropy(f, t)) / 2, "a minus sign"),
]


@pytest.mark.parametrize("check, answer, message", [w[1:] for w in WRONG], ids=[w[0] for w in WRONG])
def test_a_wrong_answer_is_named(check, answer, message):
    with pytest.raises(ExerciseError) as caught:
        check(answer)
    assert message in str(caught.value), str(caught.value)


def test_every_check_is_tested_with_a_wrong_answer():
    checked = {w[1] for w in WRONG}
    assert {c for c, _ in CORRECT} <= checked


def test_an_error_inside_the_students_code_says_where_it_came_from():
    def broken(z, labels, n_classes):
        return z + labels  # shapes (B, nz) and (B,) do not broadcast

    with pytest.raises(ExerciseError, match="condition_noise raised RuntimeError") as caught:
        nb04.check_condition_noise(broken)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_stub_that_is_not_written_yet_is_not_disguised():
    def adain(*args):
        raise NotImplementedError("write this part")

    stub = adain

    with pytest.raises(ExerciseError, match="adain is not written yet") as err:
        nb06.check_adain(stub)
    assert isinstance(err.value.__cause__, NotImplementedError)


# --------------------------------------------------------------------------- the training runs the student's code


class Counting:
    """Wraps a function and counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def test_the_conditional_dcgan_trains_with_the_students_conditioning():
    from helpers.cdcgan import ConditionalDCGAN

    noise, features = Counting(noise_ok), Counting(features_ok)
    gan = ConditionalDCGAN(groups=("20-30", "40-50"), image_size=16, nz=8, ngf=8, ndf=8,
                           condition_noise=noise, condition_features=features)
    reference = ConditionalDCGAN(groups=("20-30", "40-50"), image_size=16, nz=8, ngf=8, ndf=8)
    assert gan.G.state_dict().keys() == reference.G.state_dict().keys()  # checkpoints do not change
    batch = (torch.rand(4, 3, 16, 16) * 2 - 1, torch.tensor([0, 1, 0, 1]))
    gan.train_step(batch)
    assert noise.calls >= 1 and features.calls >= 3  # G once; D on reals, fakes, and for the generator's loss
    with pytest.raises(TypeError, match="must be a function"):
        gan.use(condition_noise="one-hot")


def test_the_encoders_train_and_refine_with_the_students_code():
    from helpers.encoder import InversionEncoder, refine_latents

    G = nb05._tiny_generator()
    latent, image = Counting(latent_ok), Counting(image_ok)
    model = InversionEncoder(G, "real", nef=4, latent_loss=latent, image_loss=image)
    real = torch.rand(4, 3, 8, 8) * 2 - 1
    out = model.train_step((real, torch.tensor([0, 1, 0, 1])))
    assert latent.calls == 1 and image.calls == 1 and out["pixel_real"] > 0
    step = Counting(refine_ok)
    _, history = refine_latents(G, real, [0, 1, 0, 1], torch.randn(4, 8), steps=3, step=step)
    assert step.calls == 3 and len(history) == 4


def test_the_age_gan_trains_with_the_students_code():
    from helpers import agegan as ag

    parts = {"adain": Counting(adain_ok), "age_loss_D": Counting(age_D_ok), "age_loss_G": Counting(age_G_ok),
             "cycle_loss": Counting(cycle_ok)}
    gan = ag.AgeGAN(group_edges=(0, 30, 60), image_size=16, ngf=4, ndf=4, n_enc_blocks=1, n_dec_blocks=1,
                    style_dim=8, n_layers_D=2, generators=2, **parts)
    gan.train_step((torch.rand(4, 3, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 0])))
    assert all(p.calls >= 1 for p in parts.values()), {k: p.calls for k, p in parts.items()}
    adains = [m for m in gan.G_back.modules() if isinstance(m, ag.AdaIN)]
    assert adains and all(m.modulate is parts["adain"] for m in adains)  # both generators of seed 001's pair


def test_the_real_face_age_gan_teaches_its_classifier_with_the_students_loss():
    from helpers import agegan as ag

    aux = Counting(aux_ok)
    kw = dict(group_edges=(0, 30, 60), image_size=16, ngf=4, ndf=4, n_enc_blocks=1, n_dec_blocks=1, style_dim=8,
              n_layers_D=2, separate_D=True, lambda_age=0.0, lambda_age_D=0.0, lambda_age_aux=1.0, age_aux_size=16,
              age_aux_ndf=4, age_aux_fakes=True)
    batch = (torch.rand(4, 3, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 0]))
    out = ag.AgeGAN(**kw, aux_loss_C=aux).train_step(batch)
    assert aux.calls == 1
    torch.manual_seed(0)
    ref = ag.AgeGAN(**kw).train_step(batch)  # the reference loss: the same number as the student's
    torch.manual_seed(0)
    again = ag.AgeGAN(**kw, aux_loss_C=aux_ok).train_step(batch)
    assert torch.allclose(ref["C_age"], again["C_age"], atol=1e-6) and out["C_age"] > 0
