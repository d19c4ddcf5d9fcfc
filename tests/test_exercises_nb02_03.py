"""The checks of notebooks 02 and 03 pass the right answers and name the mistake in plausible wrong ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers.exercises import ExerciseError, nb02, nb03

pytestmark = pytest.mark.usefixtures("one_thread")


def bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def expect(check, fn, *fragments):
    with pytest.raises(ExerciseError) as err:
        check(fn)
    for f in fragments:
        assert f in str(err.value), str(err.value)


# --------------------------------------------------------------------------- notebook 02


def d_loss(real_logits, fake_logits):
    return bce(real_logits, 1.0) + bce(fake_logits, 0.0)


def g_loss(fake_logits):
    return bce(fake_logits, 1.0)


def test_discriminator_loss():
    assert "correct" in nb02.check_discriminator_loss(d_loss)
    expect(nb02.check_discriminator_loss, lambda r, f: bce(r, 0.0) + bce(f, 1.0), "targets are swapped")
    expect(nb02.check_discriminator_loss, lambda r, f: -d_loss(r, f), "sign is flipped")
    expect(nb02.check_discriminator_loss, lambda r, f: F.binary_cross_entropy_with_logits(
        r, torch.ones_like(r), reduction="sum") + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f), reduction="sum"),
        "summed")
    expect(nb02.check_discriminator_loss, lambda r, f: bce(r, 1.0), "only the real")
    expect(nb02.check_discriminator_loss, lambda r, f: bce(torch.sigmoid(r), 1.0) + bce(torch.sigmoid(f), 0.0), "sigmoid")
    expect(nb02.check_discriminator_loss, lambda r, f: F.binary_cross_entropy_with_logits(
        r, torch.ones_like(r), reduction="none"), "shape")
    expect(nb02.check_discriminator_loss, lambda r, f: d_loss(r, f).item(), "torch tensor")
    expect(nb02.check_discriminator_loss, lambda r, f: d_loss(r, f).detach(), "no gradient")


def test_generator_loss():
    assert "correct" in nb02.check_generator_loss(g_loss)
    expect(nb02.check_generator_loss, lambda f: -bce(f, 0.0), "minimax")
    expect(nb02.check_generator_loss, lambda f: bce(f, 0.0), "wrong target")
    expect(nb02.check_generator_loss, lambda f: -bce(f, 1.0), "sign")


def test_minimax_generator_loss():
    assert "correct" in nb02.check_minimax_generator_loss(lambda f: -bce(f, 0.0))
    expect(nb02.check_minimax_generator_loss, g_loss, "non-saturating")
    expect(nb02.check_minimax_generator_loss, lambda f: bce(f, 0.0), "sign")


def make_step(detach=True, order="DG", zero_D=True, reuse=False, own_losses=False):
    """The notebook's solution of gan_step, with a switch for each mistake."""

    def step(gan, real):
        amp = gan.precision
        z = torch.randn(real.shape[0], gan.nz, device=real.device)
        dl, gl = (d_loss, g_loss) if own_losses else (gan.d_loss, gan.g_loss)

        def d_turn():
            with amp.autocast():
                fake_logits = gan.D(fake.detach() if detach else fake)
                real_logits = gan.D(real)
                loss_D = dl(real_logits, fake_logits)
            if zero_D:
                gan.opt_D.zero_grad(set_to_none=True)
            amp.backward(loss_D)
            amp.step(gan.opt_D)
            return loss_D, real_logits, fake_logits

        with amp.autocast():
            fake = gan.G(z)
            early = gan.D(fake) if reuse else None
        if order == "GD":
            loss_G = gl(gan.D(fake))
            gan.opt_G.zero_grad(set_to_none=True)
            amp.backward(loss_G)
            amp.step(gan.opt_G)
        loss_D, real_logits, fake_logits = d_turn()
        if order == "DG":
            with amp.autocast():
                loss_G = gl(early if reuse else gan.D(fake))
            gan.opt_G.zero_grad(set_to_none=True)
            amp.backward(loss_G)
            amp.step(gan.opt_G)
        return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(),
                "D_x": torch.sigmoid(real_logits.detach().float()).mean(),
                "D_G_z": torch.sigmoid(fake_logits.detach().float()).mean()}

    return step


def test_gan_step():
    assert "correct" in nb02.check_gan_step(make_step())
    expect(nb02.check_gan_step, make_step(detach=False), "cut its fakes off from the generator")
    expect(nb02.check_gan_step, make_step(reuse=True), "before* D's update")
    expect(nb02.check_gan_step, make_step(order="GD"), "generator went first")
    expect(nb02.check_gan_step, make_step(zero_D=False), "never cleared")
    expect(nb02.check_gan_step, make_step(own_losses=True), "gan.d_loss and gan.g_loss")


def test_gan_step_trains_the_toy_gan_with_the_students_functions():
    from helpers import toygan

    calls = []
    s = toygan.ToyGANSettings(steps=5, n_frames=2, n_points=64)
    gan = toygan.ToyGAN(s, d_loss=lambda r, f: (calls.append("d"), d_loss(r, f))[1], g_loss=g_loss, step_fn=make_step())
    data = toygan.ring_of_gaussians(s.n_points)
    frames, history = toygan.train_toy(gan, data)
    assert calls.count("d") == 5 and [f.step for f in frames] == [0, 5] and len(history["loss_D"]) == 5
    # and the student's step gives the reference's game, number for number
    ref_frames, ref_history = toygan.train_toy(toygan.ToyGAN(s), data)
    assert ref_history == history


def test_dcgan_trains_with_the_students_step():
    from dataclasses import replace

    from helpers import config, dcgan

    s = replace(config.DCGAN, image_size=8, nz=4, ngf=4, ndf=4, n_samples=4)
    used = []
    torch.manual_seed(0)
    mine = dcgan.DCGAN(s, step_fn=lambda gan, real: (used.append(1), make_step()(gan, real))[1])
    torch.manual_seed(0)
    ref = dcgan.DCGAN(s)
    real = torch.rand(4, 3, 8, 8) * 2 - 1
    torch.manual_seed(1)
    a = mine.train_step(real)
    torch.manual_seed(1)
    b = ref.train_step(real)
    assert used == [1] and all(torch.allclose(a[k], b[k]) for k in b)


def test_toy_gan_covers_the_ring():
    from helpers import toygan

    s = toygan.ToyGANSettings(steps=1500, n_frames=2)
    data = toygan.ring_of_gaussians(s.n_points, s.modes, s.radius, s.std)
    assert toygan.modes_covered(data) == s.modes
    frames, _ = toygan.train_toy(toygan.ToyGAN(s), data)
    assert toygan.modes_covered(frames[0].fakes) <= 1 and toygan.modes_covered(frames[-1].fakes) == s.modes


# --------------------------------------------------------------------------- notebook 03


def lsgan(scores, target_is_real):
    return (scores.float() - (1.0 if target_is_real else 0.0)).pow(2).mean()


def cyc(rec, orig, weight):
    return weight * (rec.float() - orig.float()).abs().mean()


def idt(G_AB, G_BA, a, b, weight):
    return {"G_identity_A": cyc(G_BA(a), a, weight), "G_identity_B": cyc(G_AB(b), b, weight)}


def test_lsgan_loss():
    assert "correct" in nb03.check_lsgan_loss(lsgan)
    expect(nb03.check_lsgan_loss, lambda s, r: (s - (0.0 if r else 1.0)).pow(2).mean(), "wrong target")
    expect(nb03.check_lsgan_loss, lambda s, r: (s - float(r)).pow(2).sum(), "summed")
    expect(nb03.check_lsgan_loss, lambda s, r: (s - float(r)).abs().mean(), "absolute error")
    expect(nb03.check_lsgan_loss, lambda s, r: (s - float(r)).pow(2).mean(dim=(1, 2, 3)), "shape")


def test_cycle_loss():
    assert "correct" in nb03.check_cycle_loss(cyc)
    expect(nb03.check_cycle_loss, lambda r, o, w: (r - o).abs().mean(), "weight is missing")
    expect(nb03.check_cycle_loss, lambda r, o, w: w * (r - o).pow(2).mean(), "squared error")
    expect(nb03.check_cycle_loss, lambda r, o, w: w * (r - o).mean(), "absolute value")


def test_identity_losses():
    assert "correct" in nb03.check_identity_losses(idt)
    expect(nb03.check_identity_losses, lambda G_AB, G_BA, a, b, w: {
        "G_identity_A": cyc(G_AB(a), a, w), "G_identity_B": cyc(G_BA(b), b, w)}, "through G_AB")
    expect(nb03.check_identity_losses, lambda G_AB, G_BA, a, b, w: {
        "G_identity_A": cyc(G_AB(b), b, w), "G_identity_B": cyc(G_BA(a), a, w)}, "swapped")
    expect(nb03.check_identity_losses, lambda G_AB, G_BA, a, b, w: {"idt_A": 0}, "keys")


def make_query(**mistake):
    return lambda pool, images: nb03.query_variant(pool, images, **mistake)


def test_pool_query():
    assert "correct" in nb03.check_pool_query(make_query())
    expect(nb03.check_pool_query, make_query(return_new=True), "*stored* (older) image")
    expect(nb03.check_pool_query, make_query(store_new=False), "replaced by the new one")
    expect(nb03.check_pool_query, make_query(detach=False), "detach")
    expect(nb03.check_pool_query, lambda pool, images: images.detach()[:1], "size 0")


def make_generator_losses(wrong_judge=False, same_twice=False, identity_always=False):
    def fn(model, real_a, real_b):
        fake_b = model.G_AB(real_a)
        rec_a = (model.G_AB if same_twice else model.G_BA)(fake_b)
        fake_a = model.G_BA(real_b)
        rec_b = model.G_AB(fake_a)
        losses = {
            "G_GAN_A2B": model.gan_loss((model.D_A if wrong_judge else model.D_B)(fake_b), True),
            "G_GAN_B2A": model.gan_loss(model.D_A(fake_a), True),
            "G_cycle_A": model.cycle_loss(rec_a, real_a),
            "G_cycle_B": model.cycle_loss(rec_b, real_b),
        }
        if model.identity_weight > 0 or identity_always:
            losses.update(idt(model.G_AB, model.G_BA, real_a, real_b, max(model.identity_weight, 1.0)))
        return losses, fake_a, fake_b

    return fn


def test_generator_losses():
    assert "correct" in nb03.check_generator_losses(make_generator_losses())
    expect(nb03.check_generator_losses, make_generator_losses(wrong_judge=True), "judged by D_B")
    expect(nb03.check_generator_losses, make_generator_losses(same_twice=True), "same generator twice")
    expect(nb03.check_generator_losses, make_generator_losses(identity_always=True), "identity loss is off")
    good = make_generator_losses()
    expect(nb03.check_generator_losses, lambda m, a, b: (lambda l, fa, fb: (l, fb, fa))(*good(m, a, b)), "swapped")


def test_cyclegan_trains_with_the_students_pieces():
    from dataclasses import replace

    from helpers import config, cyclegan

    s = replace(config.CYCLEGAN, image_size=16, load_size=16, batch_size=2, ngf=4, ndf=4, n_blocks=1, n_layers_D=2, pool_size=2)
    mine, ref = cyclegan.CycleGAN(s), cyclegan.CycleGAN(s)
    used = []
    mine.gan_loss = lambda x, t: (used.append("gan"), lsgan(x, t))[1]
    mine.generator_losses = make_generator_losses()
    mine.pool_query = lambda p, i: (used.append("pool"), make_query()(p, i))[1]
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    for _ in range(3):
        got, want = mine.train_step((a, b)), ref.train_step((a, b))
    assert "gan" in used and "pool" in used
    assert set(got) == set(want) and all(torch.allclose(got[k], want[k], atol=1e-5) for k in want)
