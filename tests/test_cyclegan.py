"""CycleGAN: network shapes and sizes, the image pool, the LR schedules, and the training step."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from helpers import config
from helpers import cyclegan as cg
from helpers.cache import BatchLoader
from helpers.training import Trainer



pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def smooth_faces(n, size=32, seed=0):
    """Low-frequency random images in [-1, 1]: enough structure for a generator to learn."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def tiny_model(**kw):
    kw = {"image_size": 32, "ngf": 8, "ndf": 8, "n_blocks": 2, **kw}
    return cg.CycleGAN(**kw)


# --------------------------------------------------------------------------- shapes and sizes


def expected_resnet_params(ngf, n_blocks, norm_biases=False):
    """Counted by hand: convolution weights, plus biases only where no instance norm follows."""
    w = 3 * ngf * 49                                      # 7x7 stem
    w += 9 * (ngf * 2 * ngf + 2 * ngf * 4 * ngf)           # two stride-2 3x3 downsamplings
    w += n_blocks * 2 * 9 * (4 * ngf) ** 2                # residual blocks, two 3x3 convs each
    w += 9 * (4 * ngf * 2 * ngf + 2 * ngf * ngf)           # two 3x3 upsamplings
    w += 49 * ngf * 3 + 3                                 # 7x7 output conv, with its bias
    normed_channels = ngf + 2 * ngf + 4 * ngf + n_blocks * 2 * 4 * ngf + 2 * ngf + ngf
    return w + (normed_channels if norm_biases else 0)


def expected_patchgan_params(ndf):
    return (3 * ndf * 16 + ndf) + 16 * (ndf * 2 * ndf + 2 * ndf * 4 * ndf + 4 * ndf * 8 * ndf) + (16 * 8 * ndf + 1)


def test_parameter_counts():
    assert cg.count_parameters(cg.ResnetGenerator(64, 9)) == expected_resnet_params(64, 9) == 11_372_931
    assert cg.count_parameters(cg.ResnetGenerator(64, 6)) == expected_resnet_params(64, 6) == 7_833_987
    # junyanz's code keeps a (dead) bias before every instance norm: 11,378,179 with them.
    assert expected_resnet_params(64, 9, norm_biases=True) == 11_378_179
    assert cg.count_parameters(cg.PatchDiscriminator(64, 3)) == expected_patchgan_params(64) == 2_763_841
    # seed 003's design is about a third of the original's size
    assert cg.count_parameters(cg.Seed003Generator(64, 9)) == 3_704_419


@pytest.mark.parametrize("style", ["resnet", "seed003"])
@pytest.mark.parametrize("size", [32, 64])
def test_generator_keeps_the_shape_and_range(style, size):
    G = cg.init_weights(cg.make_generator(style, ngf=8, n_blocks=2))
    x = smooth_faces(2, size)
    y = G(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


@pytest.mark.parametrize("style", ["resnet", "seed003"])
def test_residual_generator_starts_near_the_identity(style):
    G = cg.init_weights(cg.make_generator(style, ngf=8, n_blocks=2, residual=True))
    x = smooth_faces(2)
    y = G(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert torch.allclose(y, x)  # it starts as the identity ...
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        G(x).mean().backward()
        opt.step()
    assert not torch.allclose(G(x), x)  # ... and learns a change


def test_unknown_generator_is_refused():
    with pytest.raises(ValueError, match="resnet"):
        cg.make_generator("unet")


@pytest.mark.parametrize("size,out", [(128, 14), (64, 6), (32, 2)])
def test_patchgan_output_grid(size, out):
    D = cg.PatchDiscriminator(ndf=8)
    assert D(torch.zeros(2, 3, size, size)).shape == (2, 1, out, out)


def test_patchgan_sees_70x70_patches():
    assert cg.receptive_field(3) == 70
    assert cg.receptive_field(1) == 16
    # Measured, not just computed: which input pixels move the centre score? (Without the
    # instance norms, which mix every pixel of an image into every score through its mean.)
    D = cg.init_weights(cg.PatchDiscriminator(ndf=4, n_layers=3))
    for i, layer in enumerate(D.net):
        if isinstance(layer, torch.nn.InstanceNorm2d):
            D.net[i] = torch.nn.Identity()
    x = torch.randn(1, 3, 160, 160, requires_grad=True)
    y = D(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)))
    cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2)))
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_init_weights_draws_from_n_0_002():
    G = cg.init_weights(cg.ResnetGenerator(ngf=16, n_blocks=2))
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    assert abs(w.mean().item()) < 2e-3
    assert w.std().item() == pytest.approx(0.02, rel=0.05)


# --------------------------------------------------------------------------- the image pool


def batches(n_batches, batch=10, start=0):
    """Batches of distinct images: image k is filled with the value k."""
    return [torch.arange(start + i * batch, start + (i + 1) * batch, dtype=torch.float32)[:, None, None, None]
            .expand(batch, 3, 2, 2).clone() for i in range(n_batches)]


def test_pool_of_size_zero_passes_through():
    pool = cg.ImagePool(0)
    x = torch.randn(4, 3, 8, 8)
    assert torch.equal(pool(x), x)
    assert len(pool) == 0


def test_pool_returns_the_first_images_as_they_are():
    pool = cg.ImagePool(50)
    for b in batches(5):
        assert torch.equal(pool(b), b)
    assert len(pool) == 50


def test_full_pool_mixes_new_and_stored_images():
    pool = cg.ImagePool(50, seed=1)
    for b in batches(5):
        pool(b)
    swapped = total = 0
    seen = set(range(50))
    for b in batches(40, start=50):
        out = pool(b)
        assert out.shape == b.shape
        assert len(pool) == 50  # never grows past its size
        for new, got in zip(b[:, 0, 0, 0].tolist(), out[:, 0, 0, 0].tolist()):
            total += 1
            if got != new:
                swapped += 1
                assert got in seen  # an earlier image came back instead (maybe one from this batch)
            seen.add(new)
    assert 0.4 < swapped / total < 0.6  # each image is swapped with probability 1/2


def test_pool_state_round_trip():
    a, b = cg.ImagePool(8, seed=3), cg.ImagePool(8, seed=99)
    for x in batches(2, batch=6):
        a(x)
    b.load_state_dict(a.state_dict())
    for x in batches(5, batch=6, start=100):
        assert torch.equal(a(x), b(x))


# --------------------------------------------------------------------------- learning-rate schedules


def test_linear_schedule_values():
    f = cg.LinearDecay(100, 100)
    assert [f(e) for e in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert f(100) == pytest.approx(100 / 101)
    assert f(150) == pytest.approx(50 / 101)
    assert f(199) == pytest.approx(1 / 101)
    assert f(200) == 0.0 and f(250) == 0.0


def lrs(policy, epochs, **kw):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched = cg.make_scheduler(opt, policy, **kw)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out + [opt.param_groups[0]["lr"]]


def test_schedulers_by_name():
    lin = lrs("linear", 6, n_epochs_constant=3, n_epochs_decay=3)
    assert lin == pytest.approx([2e-4, 2e-4, 2e-4, 1.5e-4, 1e-4, 0.5e-4, 0.0])
    assert lrs("constant", 4) == pytest.approx([2e-4] * 5)
    assert lrs("step", 4, step_size=2, gamma=0.1) == pytest.approx([2e-4, 2e-4, 2e-5, 2e-5, 2e-6])
    cos = lrs("cosine", 4, n_epochs_constant=2, n_epochs_decay=2)
    assert cos[0] == pytest.approx(2e-4) and cos[2] == pytest.approx(1e-4) and cos[-1] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="linear"):
        lrs("exponential", 1)


# --------------------------------------------------------------------------- the training step

TERMS = {"G_GAN_A2B", "G_GAN_B2A", "G_cycle_A", "G_cycle_B", "G_identity_A", "G_identity_B", "D_A", "D_B",
         "G", "G_GAN", "G_cycle", "G_identity", "D"}


def test_train_step_logs_every_named_term():
    m = tiny_model()
    out = m.train_step((smooth_faces(2, seed=1), smooth_faces(2, seed=2)))
    assert set(out) == TERMS
    v = {k: float(t) for k, t in out.items()}
    assert all(math.isfinite(x) for x in v.values())
    assert v["G"] == pytest.approx(v["G_GAN"] + v["G_cycle"] + v["G_identity"], rel=1e-5)
    assert v["G_cycle"] == pytest.approx(v["G_cycle_A"] + v["G_cycle_B"], rel=1e-5)
    assert v["D"] == pytest.approx(v["D_A"] + v["D_B"], rel=1e-5)
    # the discriminators are trainable again after the generators' update
    assert all(p.requires_grad for p in m.networks["D_A"].parameters())


def test_identity_loss_can_be_switched_off():
    out = tiny_model(lambda_identity=0.0).train_step((smooth_faces(2, seed=1), smooth_faces(2, seed=2)))
    assert set(out) == TERMS  # the same terms, so that every run's history has the same columns
    assert float(out["G_identity_A"]) == float(out["G_identity"]) == 0.0


def test_a_few_steps_lower_the_cycle_loss():
    m = tiny_model(seed=0)
    a, b = smooth_faces(2, seed=1), smooth_faces(2, seed=2)
    cycle = [float(m.train_step((a, b))["G_cycle"]) for _ in range(8)]
    assert cycle[-1] < 0.9 * cycle[0]


def test_every_network_learns_in_one_step():
    m = tiny_model()
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in m.networks.items()}
    m.train_step((smooth_faces(2, seed=1), smooth_faces(2, seed=2)))
    for k, net in m.networks.items():
        assert any(not torch.equal(p0, p) for p0, p in zip(before[k], net.parameters())), k


def test_seed003_generator_trains_too():
    m = tiny_model(generator="seed003")
    out = m.train_step((smooth_faces(2, seed=1), smooth_faces(2, seed=2)))
    assert math.isfinite(float(out["G"]))


def test_image_size_must_fit_the_generator():
    with pytest.raises(ValueError, match="multiple of 8"):
        tiny_model(image_size=36, generator="seed003")


# --------------------------------------------------------------------------- inference


def test_translate_keeps_shape_and_range():
    m = tiny_model()
    x = smooth_faces(5)
    for direction in ("A2B", "B2A", "young2old", "old2young"):
        y = m.translate(x, direction, batch_size=2)
        assert y.shape == x.shape and y.dtype == torch.float32
        assert y.min() >= -1 and y.max() <= 1
    u8 = ((x + 1) * 127.5).round().to(torch.uint8)
    assert m.translate(u8, "A2B").shape == x.shape
    there, back = m.cycle(x, "A2B")
    assert there.shape == back.shape == x.shape
    assert torch.allclose(there, m.translate(x, "A2B"))
    with pytest.raises(ValueError, match="A2B"):
        m.translate(x, "sideways")


def test_save_translations(tmp_path):
    m = tiny_model()
    paths = cg.save_translations(m, smooth_faces(3), tmp_path / "out", "A2B",
                                 names=["25_0_0_1.jpg.chip.jpg", "20_1_2_2.jpg.chip.jpg", "30_0_1_3.jpg"])
    assert [p.name for p in paths] == ["25_0_0_1.png", "20_1_2_2.png", "30_0_1_3.png"]
    assert all(p.stat().st_size > 0 for p in paths)


# --------------------------------------------------------------------------- with the Trainer


def _loaders(seed=0):
    a = ((smooth_faces(6, seed=10) + 1) * 127.5).round().to(torch.uint8)
    b = ((smooth_faces(10, seed=11) + 1) * 127.5).round().to(torch.uint8)
    return cg.UnpairedBatches(BatchLoader(a, 2, flip=True, seed=seed), BatchLoader(b, 2, flip=True, seed=seed + 1))


def test_unpaired_batches_cover_the_larger_domain():
    data = _loaders()
    assert len(data) == 5  # 10 old faces in batches of 2; the 6 young ones are reshuffled as needed
    pairs = list(data)
    assert len(pairs) == 5 and all(a.shape == b.shape == (2, 3, 32, 32) for a, b in pairs)


def test_resume_gives_the_same_run(tmp_path):
    def run(folder, steps):
        m = tiny_model(pool_size=3, n_epochs_constant=1, n_epochs_decay=2)
        t = Trainer(m, _loaders(), folder, checkpoint_every=0, progress=False)
        t.fit(steps=steps)
        return m, t

    straight, t1 = run(tmp_path / "straight", 7)
    run(tmp_path / "resumed", 3)
    resumed, t2 = run(tmp_path / "resumed", 7)  # carries on from step 3, across an epoch end
    assert t2.step == 7 and t2.epoch == 1
    assert resumed.opt_G.param_groups[0]["lr"] == straight.opt_G.param_groups[0]["lr"] < 2e-4
    for k in straight.networks:
        for p, q in zip(straight.networks[k].parameters(), resumed.networks[k].parameters()):
            assert torch.equal(p, q), k
    assert t1.history.to_frame().equals(t2.history.to_frame())


# --------------------------------------------------------------------------- options for real faces


def test_options_off_keep_the_old_networks_and_config():
    """With every new option off, the state_dict keys and the config are those of the plain model (old checkpoints load)."""
    m = tiny_model(residual=True)
    assert sorted(m.networks) == ["D_A", "D_B", "G_AB", "G_BA"] and sorted(m.optimizers) == ["D", "G"]
    # a config saved before the options existed rebuilds the same model, with every option off
    old = {k: v for k, v in m.config.items() if k not in ("mask", "lambda_age", "diffaug", "lambda_mask", "age_aux_size")}
    rebuilt = config.settings_from(m.settings, old)
    assert not rebuilt.mask and rebuilt.lambda_age == 0 and rebuilt.diffaug == ""
    keys = set(cg.make_generator("resnet", 8, 2, residual=True).state_dict())
    assert set(m.networks["G_AB"].state_dict()) == keys
    assert not any(k.startswith("mask_head") for k in keys)
    # and the same weights give the same output as before the options existed: net(x), plus x when residual
    G = m.networks["G_AB"]
    x = smooth_faces(2)
    torch.nn.init.normal_(G.net[-2].weight, 0, 0.02)
    assert torch.allclose(G(x), (x + 2 * G.net(x)).clamp(-1, 1))


@pytest.mark.parametrize("style", ["resnet", "seed003"])
def test_mask_generator_starts_near_the_identity_and_learns(style):
    G = cg.init_weights(cg.make_generator(style, ngf=8, n_blocks=2, mask=True))
    assert any(k.startswith("mask_head") for k in G.state_dict())
    x = smooth_faces(2)
    y, m = G(x, return_mask=True)
    assert y.shape == x.shape and m.shape == (2, 1, 32, 32)
    assert torch.allclose(m, torch.full_like(m, torch.sigmoid(torch.tensor(cg.MASK_INIT_BIAS)).item()))
    assert (y - x).abs().max() < 0.1  # under 5% of a colour change of at most 2
    assert torch.allclose(G(x), y)
    # the output is exactly m * colour + (1 - m) * x
    colour = G.net(x)
    assert torch.allclose(y, m * colour + (1 - m) * x, atol=1e-6)
    # the mask head gets a gradient: it can open where the face must change
    G(x, return_mask=True)[0].sum().backward()
    assert G.mask_head[-1].weight.grad.abs().sum() > 0


def test_mask_penalty_weights_the_mean_and_the_smoothness():
    m = torch.zeros(1, 1, 4, 4)
    m[..., :2] = 1.0
    assert float(cg.mask_penalty(m, 1.0)) == pytest.approx(0.5)
    tv = float(cg.mask_penalty(m, 0.0, 1.0))
    assert tv == pytest.approx(4 / 12)  # 4 of the 12 horizontal neighbour pairs differ by 1; no vertical ones
    assert float(cg.mask_penalty(torch.zeros(1, 1, 4, 4), 1.0, 1.0)) == 0.0


def test_mask_option_logs_its_penalty_and_trains():
    m = tiny_model(residual=True, mask=True, lambda_mask=0.1, lambda_mask_tv=0.01)
    assert m.config["mask"] is True and m.config["lambda_mask"] == 0.1
    out = m.train_step((smooth_faces(2, seed=1), smooth_faces(2, seed=2)))
    assert set(out) == TERMS | {"G_mask"}
    v = {k: float(t) for k, t in out.items()}
    assert v["G"] == pytest.approx(v["G_GAN"] + v["G_cycle"] + v["G_identity"] + v["G_mask"], rel=1e-5)
    # 4 masks of about sigmoid(-3) each, times 0.1
    assert v["G_mask"] == pytest.approx(4 * 0.1 * 0.0474, rel=0.1)


def test_age_aux_classifier_reads_any_size_and_gives_the_generators_a_gradient():
    C = cg.AgeAuxClassifier(ndf=4, image_size=16)
    assert C(smooth_faces(3, 64)).shape == (3,) and C(smooth_faces(3, 16)).shape == (3,)
    G = cg.init_weights(cg.make_generator("resnet", 8, 2, residual=True))
    torch.nn.init.normal_(G.net[-2].weight, 0, 0.02)
    C.requires_grad_(False)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(C(G(smooth_faces(2))), torch.ones(2))
    loss.backward()
    assert all(p.grad is None for p in C.parameters())
    assert G.net[0 + 1].weight.grad.abs().sum() > 0  # the generator's first convolution learns from it


def test_age_option_trains_its_own_classifier_on_real_faces_only():
    m = tiny_model(residual=True, lambda_age=2.0, age_aux_size=16, age_aux_ndf=4)
    assert "C_age" in m.networks and "C" in m.optimizers and m.config["lambda_age"] == 2.0
    young, old = smooth_faces(4, seed=1) - 0.5, smooth_faces(4, seed=2) + 0.5  # dark against bright
    first = float(m.train_step((young.clamp(-1, 1), old.clamp(-1, 1)))["C_age"])
    for _ in range(60):
        out = m.train_step((young.clamp(-1, 1), old.clamp(-1, 1)))
    assert set(out) == TERMS | {"G_age_A2B", "G_age_B2A", "G_age", "C_age"}
    v = {k: float(t) for k, t in out.items()}
    assert v["G"] == pytest.approx(v["G_GAN"] + v["G_cycle"] + v["G_identity"] + v["G_age"], rel=1e-5)
    assert v["C_age"] < 0.5 * first  # it learns to tell the two domains apart
    with torch.no_grad():
        C = m.networks["C_age"]
        assert (C(old.clamp(-1, 1)) > C(young.clamp(-1, 1))).all()
    assert all(p.requires_grad for p in m.networks["C_age"].parameters())


def test_diff_augment_is_differentiable_and_checks_its_policy():
    x = smooth_faces(4, 32).requires_grad_(True)
    torch.manual_seed(0)
    y = cg.diff_augment(x, "color,translation,cutout")
    assert y.shape == x.shape and not torch.allclose(y, x)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(cg.diff_augment(x, ""), x)
    # cutout zeroes a quarter of the image (a square of half the side), less where it crosses the border
    z = cg.diff_augment(torch.ones(8, 3, 32, 32), "cutout")
    zero_share = (z == 0).float().mean((1, 2, 3))
    assert (zero_share > 0.05).all() and (zero_share <= 0.25 + 1e-6).all()
    # translation moves the content and fills with zeros
    t = cg.diff_augment(torch.ones(16, 3, 32, 32), "translation")
    assert (t == 0).any() and set(t.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="no policy"):
        cg.diff_augment(x, "colour")
    with pytest.raises(ValueError, match="no policy"):
        tiny_model(diffaug="zoom")


def test_diffaug_option_trains():
    m = tiny_model(residual=True, diffaug="color,translation,cutout")
    assert m.config["diffaug"] == "color,translation,cutout"
    out = m.train_step((smooth_faces(2, seed=1), smooth_faces(2, seed=2)))
    assert set(out) == TERMS and all(math.isfinite(float(v)) for v in out.values())


def test_options_reach_the_model_from_the_settings():
    from dataclasses import replace

    from helpers import config

    s = replace(config.CYCLEGAN_CPU, image_size=32, ngf=8, ndf=8, n_blocks=2, mask=True, lambda_mask=0.05,
                lambda_age=1.0, age_aux_size=16, diffaug="translation")
    m = cg.CycleGAN(s)
    assert m.mask and m.lambda_age == 1.0 and m.diffaug == "translation"
    assert m.networks["C_age"].image_size == 16 and m.networks["G_AB"].mask_head is not None


def test_a_run_with_the_options_resumes_and_loads_its_generators(tmp_path):
    kw = dict(residual=True, mask=True, lambda_mask=0.05, lambda_age=1.0, age_aux_size=16, age_aux_ndf=4,
              diffaug="translation")
    m = tiny_model(**kw)
    m.train_step((smooth_faces(2, seed=1), smooth_faces(2, seed=2)))
    path = cg.save_generators(m, tmp_path / "g.pt")
    back = cg.load_generators(path)
    x = smooth_faces(2, seed=3)
    assert torch.allclose(back.translate(x), m.translate(x))


def test_age_classifier_has_its_own_learning_rate():
    m = tiny_model(lambda_age=1.0, age_aux_lr=1e-3)
    assert m.opt_C.param_groups[0]["lr"] == pytest.approx(1e-3) and m.opt_G.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert m.config["age_aux_lr"] == 1e-3
    assert tiny_model(lambda_age=1.0).opt_C.param_groups[0]["lr"] == pytest.approx(2e-4)  # 0: the model's lr
    assert not hasattr(tiny_model(age_aux_lr=1e-3), "opt_C")  # no classifier, no optimiser for it


@pytest.mark.parametrize("style", ["resnet", "seed003"])
def test_nearest_upsampling_option(style):
    G = cg.init_weights(cg.make_generator(style, ngf=8, n_blocks=2, residual=True, upsample="nearest"))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules())
    x = smooth_faces(2)
    assert torch.allclose(G(x), x)  # still starts as the identity
    plain = cg.make_generator(style, ngf=8, n_blocks=2, residual=True)
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in plain.modules())  # the default is the paper's
    m = tiny_model(residual=True, upsample="nearest")
    assert m.config["upsample"] == "nearest" and tiny_model().config["upsample"] == "transposed"
    assert math.isfinite(float(m.train_step((smooth_faces(2, seed=1), smooth_faces(2, seed=2)))["G"]))
    with pytest.raises(ValueError, match="upsample"):
        cg.make_generator(style, ngf=8, n_blocks=2, upsample="bilinear")


def test_real_face_cpu_setting_builds_a_model_with_its_options():
    from helpers import config

    s = config.CYCLEGAN_REAL_CPU
    assert s.mask and s.lambda_age > 0 and s.diffaug and s.residual == config.CYCLEGAN_CPU.residual
    # the same networks and schedule as the CPU setting: only the options differ
    cpu = config.CYCLEGAN_CPU
    assert (s.image_size, s.ngf, s.ndf, s.n_blocks, s.batch_size) == (cpu.image_size, cpu.ngf, cpu.ndf, cpu.n_blocks,
                                                                      cpu.batch_size)
    m = cg.CycleGAN(s)
    assert {"C_age", "G_AB"} <= set(m.networks) and m.networks["G_AB"].mask_head is not None
    x = smooth_faces(1, s.image_size)
    out = m.train_step((x, -x))
    assert {"G_mask", "G_age", "C_age"} <= set(out) and all(math.isfinite(float(v)) for v in out.values())


def test_age_classifier_can_learn_the_fakes_as_their_source_age(monkeypatch):
    """With age_aux_fakes, the classifier's batch holds the detached fakes too, labelled with the domain they came from."""
    m = tiny_model(residual=True, lambda_age=1.0, age_aux_fakes=True, age_aux_ndf=4, age_aux_size=16)
    assert m.config["age_aux_fakes"] is True
    seen = []
    C = m.networks["C_age"]
    real_forward = C.forward

    def spy(x):
        seen.append((x.shape[0], x.requires_grad, torch.is_grad_enabled() and any(p.requires_grad for p in C.parameters())))
        return real_forward(x)

    monkeypatch.setattr(C, "forward", spy)
    a, b = smooth_faces(2, seed=1), smooth_faces(2, seed=2)
    m.train_step((a, b))
    # two generator-loss calls on the fakes (C frozen), then one training call on 2 + 2 real and 2 + 2 fake faces
    assert [n for n, _, _ in seen] == [2, 2, 8]
    assert seen[-1][2] and not seen[0][2]
    assert not seen[-1][1]  # the fakes are detached: the classifier's update does not reach the generators
    plain = tiny_model(residual=True, lambda_age=1.0, age_aux_ndf=4, age_aux_size=16)
    Cp = plain.networks["C_age"]
    sizes = []
    fwd = Cp.forward
    monkeypatch.setattr(Cp, "forward", lambda x: (sizes.append(x.shape[0]), fwd(x))[1])
    plain.train_step((a, b))
    assert sizes == [2, 2, 4]  # real faces only


def test_face_memory_keeps_the_last_faces_and_samples_them_back():
    mem = cg.FaceMemory(size=3, seed=0)
    faces = torch.linspace(-1, 1, 5).view(5, 1, 1, 1).expand(5, 3, 2, 2).contiguous()
    mem.add(faces[:2])
    assert len(mem) == 2
    mem.add(faces[2:])
    assert len(mem) == 3  # the oldest two were overwritten
    drawn = mem.sample(50)
    assert drawn.shape == (50, 3, 2, 2)
    values = set(drawn[:, 0, 0, 0].round(decimals=2).tolist())
    assert values <= {0.0, 0.5, 1.0} and len(values) == 3  # faces 2, 3, 4 (values 0, 0.5, 1), up to uint8 rounding


def test_age_classifier_batch_grows_with_remembered_faces(monkeypatch):
    m = tiny_model(residual=True, lambda_age=1.0, age_aux_batch=5, age_aux_ndf=4, age_aux_size=16)
    assert m.config["age_aux_batch"] == 5 and m.memory_A is not None
    assert tiny_model(residual=True, lambda_age=1.0).memory_A is None  # off by default
    C = m.networks["C_age"]
    sizes = []
    fwd = C.forward
    monkeypatch.setattr(C, "forward", lambda x: (sizes.append(x.shape[0]), fwd(x))[1])
    m.train_step((smooth_faces(2, seed=1), smooth_faces(2, seed=2)))
    assert sizes == [2, 2, 2 + 2 + 5 + 5] and len(m.memory_A) == 2 == len(m.memory_B)


def test_augmenter_checks_its_policy_at_once_and_is_the_identity_when_empty():
    from helpers.layers import augmenter

    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert augmenter("")(x) is x
    assert augmenter("translation")(x).shape == x.shape
    with pytest.raises(ValueError, match="colour"):
        augmenter("colour")


def _notebook_generator_losses():
    """Notebook 03's exercise 6, written as its solution is (a student's function: module ``__main__``)."""
    import textwrap

    source = textwrap.dedent('''
        def generator_losses(model, real_a, real_b):
            fake_b = model.G_AB(real_a)
            rec_a = model.G_BA(fake_b)
            fake_a = model.G_BA(real_b)
            rec_b = model.G_AB(fake_a)
            losses = {
                "G_GAN_A2B": model.gan_loss(model.D_B(fake_b), True),
                "G_GAN_B2A": model.gan_loss(model.D_A(fake_a), True),
                "G_cycle_A": model.cycle_loss(rec_a, real_a),
                "G_cycle_B": model.cycle_loss(rec_b, real_b),
            }
            if model.identity_weight > 0:
                losses["G_identity_A"] = model.identity_loss(model.G_BA(real_a), real_a)
                losses["G_identity_B"] = model.identity_loss(model.G_AB(real_b), real_b)
            return losses, fake_a, fake_b
    ''')
    namespace = {"__name__": "__main__"}
    exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102 -- as a notebook cell defines it
    return namespace["generator_losses"]


def test_a_students_generator_losses_trains_the_real_face_setting_too():
    """Issue 25: exercise 6 counts on real faces. Around the student's toy-style function, the step adds the
    mask penalty, DiffAugment before the discriminators and the auxiliary classifier's terms: the same terms,
    to rounding, as the course's generator_losses."""
    from dataclasses import replace

    s = replace(config.CYCLEGAN_REAL_CPU, image_size=32, load_size=36, ngf=4, ndf=4, n_blocks=1, age_aux_size=16,
                age_aux_ndf=4, lambda_identity=0.5)
    assert s.mask and s.lambda_age > 0 and s.diffaug
    model = cg.CycleGAN(s)
    g = torch.Generator().manual_seed(0)
    real_a, real_b = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))
    torch.manual_seed(5)
    course, fa, fb = cg.generator_losses(model, real_a, real_b)
    model.generator_losses = _notebook_generator_losses()
    torch.manual_seed(5)
    mine, fa2, fb2 = model.students_generator_losses(real_a, real_b)
    assert set(mine) == set(course) and {"G_mask", "G_age_A2B", "G_identity_A"} <= set(mine)
    for k in course:
        assert torch.allclose(mine[k], course[k], atol=1e-6), k
    assert torch.equal(fa, fa2) and torch.equal(fb, fb2)
    assert not isinstance(model.D_A, cg._Augmented) and "mask_log" not in vars(model.networks["G_AB"])
    out = model.train_step((real_a, real_b))  # and the whole step runs with it
    assert {"G_mask", "G_age", "C_age"} <= set(out)


def test_a_generator_with_coarse_colour_paints_its_change_in_broad_tints_only():
    from helpers.layers import coarse_colour

    torch.manual_seed(0)
    G = cg.make_generator("resnet", ngf=8, n_blocks=1, residual=True, mask=True, colour_res=4)
    assert G.colour_res == 4
    for p in G.net[-2].parameters():  # any change it draws
        torch.nn.init.normal_(p, std=0.05)
    torch.nn.init.zeros_(G.mask_head[-1].bias)  # the mask half open
    x = torch.rand(2, 3, 32, 32) * 1.6 - 0.8
    with torch.no_grad():
        coarse = G(x)
        G.colour_res = 0
        fine = G(x)
    assert torch.allclose(coarse, (x + coarse_colour(fine - x, 4)).clamp(-1, 1), atol=1e-6)
    assert not torch.allclose(coarse, fine, atol=1e-3)
    s = replace(config.CYCLEGAN_CPU, image_size=32, ngf=8, ndf=8, n_blocks=1, colour_res=4)
    gan = cg.CycleGAN(s)
    assert gan.G_AB.colour_res == gan.G_BA.colour_res == 4
    assert cg.generator_from(gan.config, gan.G_AB.state_dict()).colour_res == 4
