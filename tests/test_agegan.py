"""The age-modulated GAN: shapes, the age condition reaching every decoder layer, the age head, the step, resume, loading."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from helpers import agegan as ag
from helpers.cache import BatchLoader
from helpers.training import Trainer

K = 4  # age groups in these tests


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def smooth_faces(n, size=32, seed=0):
    """Low-frequency random images in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, 3, 4, 4, generator=g) * 2 - 1, size=size, mode="bilinear", align_corners=False)


def tiny(**kw):
    kw = {"group_edges": tuple(range(0, 15 * K, 15)), "image_size": 32, "ngf": 8, "ndf": 8, "n_enc_blocks": 1, "n_dec_blocks": 2,
          "style_dim": 16, "n_layers_D": 3, **kw}
    return ag.AgeGAN(**kw)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("size", [32, 64])
def test_shapes(size):
    G = ag.AgeGenerator(K, ngf=8, n_enc_blocks=1, n_dec_blocks=1, style_dim=16)
    D = ag.AgeDiscriminator(K, ndf=8, n_layers=3)
    x = smooth_faces(3, size)
    assert G.encoder(x).shape == (3, 32, size // 4, size // 4)  # the identity code: 4 ngf channels at S/4
    y = G(x, torch.tensor([0, 1, 3]))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    adv, age = D(y)
    assert adv.shape == (3, 1, size // 8, size // 8) and age.shape == (3, K)


@pytest.mark.parametrize("upsample", ["transposed", "nearest"])
def test_upsampling_choices(upsample):
    G = ag.AgeGenerator(K, ngf=8, n_enc_blocks=1, n_dec_blocks=1, style_dim=16, upsample=upsample)
    transposed = [m for m in G.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(transposed) == (2 if upsample == "transposed" else 0)
    assert G(smooth_faces(2, 32), 1).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="upsample"):
        ag.AgeGenerator(K, ngf=8, upsample="bicubic")


def test_a_residual_generator_starts_as_the_identity_and_then_learns():
    gan = tiny(residual=True, upsample="nearest", lr=1e-3)
    x = smooth_faces(4, 32)
    with torch.no_grad():
        for t in range(K):
            assert torch.allclose(gan.G(x, t), x, atol=1e-6)  # nothing drawn yet: G(x, t) = x for every age
    gan.train_step((x, torch.arange(4) % K))
    with torch.no_grad():
        assert not torch.allclose(gan.G(x, 1), gan.G(x, 2))  # after one step the age matters


def test_conditions():
    one = ag.as_condition(2, K, 3)
    assert one.shape == (3, K) and torch.equal(one.argmax(1), torch.tensor([2, 2, 2]))
    assert torch.equal(ag.as_condition(torch.tensor([0, 3]), K, 2), torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))
    soft = torch.tensor([[0.0, 0.5, 0.5, 0.0]])
    assert torch.equal(ag.as_condition(soft, K, 1), soft)
    with pytest.raises(ValueError, match="0..3"):
        ag.as_condition(4, K, 1)
    with pytest.raises(ValueError, match="columns"):
        ag.as_condition(torch.zeros(1, 3), K, 1)


def test_random_targets_never_the_source():
    src = torch.arange(K).repeat(250)
    t = ag.random_targets(src, K, torch.Generator().manual_seed(0))
    assert not (t == src).any()
    counts = torch.bincount((t - src) % K, minlength=K)  # every other group, about equally often
    assert counts[0] == 0 and counts[1:].min() > 250


def test_group_labels_and_mid_ages():
    assert ag.group_labels([0, 14, 15, 74, 75, 100], (0, 15, 30, 45, 60, 75)).tolist() == [0, 0, 1, 4, 5, 5]
    assert ag.group_labels([5], (10, 20)).tolist() == [-1]
    assert ag.group_mid_ages((0, 15, 30), max_age=90) == [7.0, 22.0, 60.0]


def test_bad_settings():
    with pytest.raises(ValueError, match="multiple of 4"):
        tiny(image_size=30)
    with pytest.raises(ValueError, match="generators"):
        tiny(generators=3)


# --------------------------------------------------------------------------- the age condition


def test_the_age_reaches_every_decoder_layer():
    torch.manual_seed(0)
    G = ag.AgeGenerator(K, ngf=8, n_enc_blocks=1, n_dec_blocks=2, style_dim=16)
    x = smooth_faces(2, 32)
    adains = [m for m in G.decoder.modules() if isinstance(m, ag.AdaIN)]
    assert len(adains) == len(G.decoder.layer_channels) == 2 * 2 + 2  # two per block, one per upsampling
    assert not any(isinstance(m, ag.AdaIN) for m in G.encoder.modules())
    seen = {}

    def record(name):
        def hook(module, args, out):
            seen.setdefault(name, []).append((args[1].detach(), args[2].detach(), out.detach()))
        return hook

    hooks = [m.register_forward_hook(record(i)) for i, m in enumerate(adains)]
    code_a, code_b = G.encoder(x), G.encoder(x)
    y_a, y_b = G(x, 0), G(x, 3)
    for h in hooks:
        h.remove()
    assert torch.equal(code_a, code_b)  # the identity code does not depend on the target
    for i in range(len(adains)):
        (g0, b0, o0), (g1, b1, o1) = seen[i]
        # each layer gets its own age-dependent scale and shift, and its output changes with them
        assert not torch.allclose(g0, g1) and not torch.allclose(b0, b1), f"AdaIN layer {i} ignores the age"
        assert not torch.allclose(o0, o1)
    assert (y_a - y_b).abs().mean() > 1e-4  # changing only the target group changes the face
    assert torch.equal(G(x, 2), G(x, torch.tensor([2, 2])))


def test_soft_targets_interpolate():
    torch.manual_seed(0)
    G = ag.AgeGenerator(K, ngf=8, n_enc_blocks=1, n_dec_blocks=1, style_dim=16)
    x = smooth_faces(1, 32)
    a, b = G(x, 1), G(x, 2)
    mid = G(x, torch.tensor([[0.0, 0.5, 0.5, 0.0]]))
    assert not torch.allclose(mid, a) and not torch.allclose(mid, b)


# --------------------------------------------------------------------------- the discriminator's age head


def test_the_age_head_learns_a_fixed_batch():
    torch.manual_seed(0)
    D = ag.AgeDiscriminator(K, ndf=8, n_layers=3)
    x = smooth_faces(16, 32, seed=1)
    y = torch.arange(16) % K
    loss_fn = ag.AgeClassificationLoss()
    opt = torch.optim.Adam(D.parameters(), lr=2e-3)
    first = None
    for _ in range(60):
        loss = loss_fn(D(x)[1], y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first == pytest.approx(math.log(K), rel=0.1)  # chance at the start
    assert loss.item() < 0.1 * first
    assert (D(x)[1].argmax(1) == y).all()


def test_a_per_group_discriminator_judges_each_face_by_its_groups_map():
    D = ag.AgeDiscriminator(K, ndf=8, n_layers=3, per_group=True)
    adv, age = D(smooth_faces(3, 32))
    assert adv.shape == (3, K, 4, 4) and age.shape == (3, K)
    picked = D.realness(adv, torch.tensor([2, 0, 3]))
    assert picked.shape == (3, 1, 4, 4)
    assert torch.equal(picked[0, 0], adv[0, 2]) and torch.equal(picked[1, 0], adv[1, 0]) and torch.equal(picked[2, 0], adv[2, 3])
    shared = ag.AgeDiscriminator(K, ndf=8, n_layers=3)
    adv1, _ = shared(smooth_faces(2, 32))
    assert adv1.shape[1] == 1 and torch.equal(shared.realness(adv1, torch.tensor([1, 3])), adv1)
    gan = tiny(per_group_D=True)
    out = gan.train_step((smooth_faces(4), torch.arange(4) % K))
    assert all(math.isfinite(float(v)) for v in out.values())


def test_losses():
    x = torch.zeros(2, 3, 4, 4)
    assert ag.L1Loss(10)(x + 0.5, x).item() == pytest.approx(5.0)
    logits = torch.zeros(3, K)
    assert ag.AgeClassificationLoss(2.0)(logits, torch.tensor([0, 1, 2])).item() == pytest.approx(2 * math.log(K))


# --------------------------------------------------------------------------- the training step


TERMS = {"D_adv", "D_age", "G_adv", "G_age", "G_cycle", "G_identity", "D", "G", "total", "acc_real", "acc_fake"}


@pytest.mark.parametrize("generators", [1, 2])
def test_train_step_logs_every_term_and_updates_both_players(generators):
    gan = tiny(generators=generators)
    assert set(gan.networks) == ({"G", "D"} if generators == 1 else {"G", "G_back", "D"})
    before = {k: [p.clone() for p in net.parameters()] for k, net in gan.networks.items()}
    out = gan.train_step((smooth_faces(6), torch.tensor([0, 1, 2, 3, 0, 1])))
    assert set(out) == TERMS
    assert all(math.isfinite(float(v)) for v in out.values())
    assert float(out["total"]) == pytest.approx(float(out["D"]) + float(out["G"]), rel=1e-5)
    parts = ["G_adv", "G_age", "G_cycle", "G_identity"]
    assert float(out["G"]) == pytest.approx(sum(float(out[k]) for k in parts), rel=1e-5)
    for k, net in gan.networks.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[k], net.parameters())), f"{k} did not learn"
    assert all(p.requires_grad for p in gan.D.parameters())  # the step leaves D trainable


def test_a_few_steps_pull_the_identity_and_cycle_terms_down():
    torch.manual_seed(0)
    gan = tiny(lr=1e-3)
    x, s = smooth_faces(8, seed=2), torch.arange(8) % K
    outs = [gan.train_step((x, s)) for _ in range(25)]

    def mean(term, part):
        return sum(float(o[term]) for o in part) / len(part)

    assert mean("G_identity", outs[-5:]) < 0.6 * mean("G_identity", outs[:3])
    assert mean("G_cycle", outs[-5:]) < 0.8 * mean("G_cycle", outs[:3])  # the targets change at every step


def test_translate_and_age_grid():
    gan = tiny()
    x = (torch.rand(5, 3, 32, 32) * 255).to(torch.uint8)
    y = gan.translate(x, 2, batch_size=2)
    assert y.shape == (5, 3, 32, 32) and y.dtype == torch.float32 and y.device.type == "cpu"
    assert torch.allclose(gan.translate(x, torch.full((5,), 2)), y, atol=1e-5)  # chunks or not
    grid = gan.age_grid(x[:2])
    assert grid.shape == (2, 1 + K, 3, 32, 32)
    assert torch.allclose(grid[:, 0], x[:2].float() / 127.5 - 1) and torch.allclose(grid[:, 3], y[:2], atol=1e-5)
    assert gan.G.training  # translate puts the mode back


def test_strength_scales_the_change_and_only_at_use():
    torch.manual_seed(0)
    gan = tiny(strength=0.5)
    with torch.no_grad():  # a generator that changes faces (a fresh residual one is the identity)
        for p in gan.G.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = smooth_faces(4)
    full = ag.translate(gan.G, x, 1, strength=1.0)
    assert (full - x).abs().mean() > 0.01  # there is a change to scale
    half = gan.translate(x, 1)  # the settings' 0.5
    assert torch.allclose(half, (x + 0.5 * (full - x)).clamp(-1, 1), atol=1e-5)
    assert torch.allclose(gan.age_grid(x[:2])[:, 2], half[:2], atol=1e-5)  # the grids use it too
    with torch.no_grad():  # training sees the whole change
        assert torch.allclose(gan.G(x, torch.ones(4, dtype=torch.long)), full, atol=1e-5)
    g = ag.generator_from({**gan.config, "strength": 0.25}, gan.G.state_dict())
    assert g.strength == 0.25 and ag.generator_from({k: v for k, v in gan.config.items() if k != "strength"},
                                                    gan.G.state_dict()).strength == 1.0  # older runs: all of it
    for bad in (0, -1, 2.5, "much", float("nan")):
        with pytest.raises(ValueError, match=r"strength must be a number in \(0, 2\]"):
            ag.translate(gan.G, x, 1, strength=bad)
    with pytest.raises(ValueError, match="strength must be"):
        tiny(strength=3)


def test_resume_and_load_generator(tmp_path):
    x = (torch.rand(12, 3, 32, 32) * 255).to(torch.uint8)
    labels = torch.arange(12) % K

    def trainer(folder):
        torch.manual_seed(0)
        loader = BatchLoader(x, 4, labels=labels, seed=0)
        return Trainer(tiny(group_edges=[0, 20, 40, 60], upsample="nearest", residual=True), loader, folder,
                       checkpoint_every=2, progress=False)

    reference = trainer(tmp_path / "reference")
    reference.fit(steps=4)  # one run without a break
    t = trainer(tmp_path / "run")
    t.fit(steps=2)  # stops mid-epoch
    t2 = trainer(tmp_path / "run")  # a new process, say: resumes at step 2 with the target sampler where it was
    assert t2.step == 2 and torch.equal(t2.model.target_rng.get_state(), t.model.target_rng.get_state())
    t2.fit(steps=4)
    assert t2.history.to_frame().equals(reference.history.to_frame())  # exactly the same run

    G = ag.load_generator(tmp_path / "run")
    assert G.group_edges == [0, 20, 40, 60] and not G.training
    assert torch.allclose(ag.translate(G, x[:3], 1), t2.model.translate(x[:3], 1), atol=1e-5)
    with pytest.raises(FileNotFoundError):
        ag.load_generator(tmp_path / "empty")


# --------------------------------------------------------------------------- the quick age check


def test_age_probe_learns_groups_of_distinct_faces():
    # Faces whose brightness is their group: a probe reads that in a few dozen steps.
    y = torch.arange(64) % K
    x = ((y.float()[:, None, None, None] / (K - 1)) * 200 + 20).expand(64, 3, 32, 32)
    x = (x + torch.rand(64, 3, 32, 32) * 20).to(torch.uint8)
    from helpers.metrics import accuracy, train_group_classifier

    probe = train_group_classifier(x, y.numpy(), K, steps=40, batch_size=32)
    assert accuracy(probe, x, y.numpy()) > 0.9


def test_seed001_results_table():
    t = ag.SEED001_RESULTS
    assert set(t["metric"]) == {"FID", "Age prediction accuracy (%)"} and len(t) == 6
    assert t.loc[(t.metric == "FID") & t.method.str.startswith("RAGAN"), "score"].item() == 57.78


# --------------------------------------------------------------------------- the real-face options


def test_a_mask_generator_starts_nearly_closed_and_keeps_the_input_where_it_is_shut():
    G = ag.AgeGenerator(K, ngf=8, n_enc_blocks=1, n_dec_blocks=1, style_dim=16, mask=True).start_as_identity()
    x = smooth_faces(3, 32)
    with torch.no_grad():
        y, m = G(x, 2, return_mask=True)
        assert m.shape == (3, 1, 32, 32)
        assert torch.allclose(m, torch.full_like(m, torch.sigmoid(torch.tensor(ag.MASK_INIT_BIAS)).item()))
        assert (y - x).abs().max() < 0.1  # under 5% of a random colour: close to the input
        G.mask_head[-1].bias.fill_(-30.0)  # a shut mask: the output is the input, pixel for pixel
        assert torch.allclose(G(x, 1), x, atol=1e-6)


def test_a_residual_mask_generator_starts_as_the_identity_and_its_colour_learns_first():
    G = ag.AgeGenerator(K, ngf=8, n_enc_blocks=1, n_dec_blocks=1, style_dim=16, residual=True, mask=True)
    G = ag.init_weights(G).start_as_identity()
    x = smooth_faces(2, 32)
    y, m = G(x, 1, return_mask=True)
    assert torch.allclose(y, x, atol=1e-6) and m.max() < 0.05
    (y - 1).abs().mean().backward()
    assert G.decoder.to_rgb[0].weight.grad.abs().sum() > 0  # the colour learns through the 5% of the mask
    assert G.mask_head[-1].weight.grad.abs().sum() == 0  # the mask only once the colour differs from the input


def test_the_auxiliary_age_classifier_learns_real_faces_and_fakes_and_is_checkpointed(tmp_path):
    gan = tiny(mask=True, lambda_mask=0.01, lambda_age_aux=1.0, age_aux_size=16, age_aux_ndf=4, age_aux_fakes=True,
               diffaug="translation")
    assert set(gan.networks) == {"G", "D", "C_age"} and "C_age" in gan.optimizers
    g_params = {id(p) for group in gan.opt_G.param_groups for p in group["params"]}
    assert not g_params & {id(p) for p in gan.C_age.parameters()}  # the generator's optimiser never moves it
    before = [p.detach().clone() for p in gan.C_age.parameters()]
    out = gan.train_step((smooth_faces(4, 32), torch.arange(4) % K))
    assert {"G_mask", "G_age_aux", "C_age", "acc_aux"} <= set(out)
    assert math.isclose(float(out["G"]), sum(float(out[k]) for k in
                                             ("G_adv", "G_age", "G_cycle", "G_identity", "G_mask", "G_age_aux")),
                        rel_tol=1e-5)
    assert any(not torch.equal(b, p) for b, p in zip(before, gan.C_age.parameters()))  # it learned
    assert all(p.requires_grad for p in gan.C_age.parameters())  # unfrozen again after the generator's turn
    G = ag.generator_from(gan.config, gan.G.state_dict())  # inference rebuilds the mask head from the config
    assert G.mask_head is not None


def test_the_real_face_options_are_off_by_default_and_an_unknown_augmentation_is_refused():
    gan = tiny()
    assert gan.C_age is None and gan.G.mask_head is None
    out = gan.train_step((smooth_faces(4, 32), torch.arange(4) % K))
    assert not {"G_mask", "G_age_aux", "C_age"} & set(out)
    with pytest.raises(ValueError, match="DiffAugment"):
        tiny(diffaug="colour")


def test_default_settings_choose_by_device_and_faces():
    from helpers import catalog, config

    assert ag.default_settings("cpu", "toy") is config.AGEGAN_CPU
    assert ag.default_settings("cuda", "toy") is config.AGEGAN_CPU  # toy traits are drawn for 64 px
    assert ag.default_settings("cpu", "utkface") is config.AGEGAN_REAL_CPU
    assert ag.default_settings("mps", "facial-age") is config.AGEGAN_REAL_CPU
    assert ag.default_settings("cuda", "utkface") is config.AGEGAN_REAL
    assert config.AGEGAN_REAL.image_size > config.AGEGAN_REAL_CPU.image_size or config.SMOKE
    assert not config.AGEGAN_CPU.mask and config.AGEGAN_CPU.lambda_age_aux == 0  # the options are off by default
    names = catalog.get("agegan").run_names()
    assert {config.AGEGAN_REAL_CPU.run_name, config.AGEGAN_REAL.run_name, config.AGEGAN_CPU.run_name} <= set(names)
    if config.SMOKE:
        assert config.AGEGAN_REAL_CPU.image_size <= 32 and config.AGEGAN_REAL.image_size <= 32


def test_group_discriminators_send_each_face_to_its_own_groups_network():
    D = ag.GroupDiscriminators(K, ndf=8, n_layers=3)
    x, groups = smooth_faces(5, 32), torch.tensor([2, 0, 2, 3, 1])
    adv, age = D(x, groups)
    assert adv.shape == (5, 1, 4, 4) and age.shape == (5, K)
    for i, k in enumerate(groups.tolist()):
        alone, _ = D.nets[k](x[i : i + 1])
        assert torch.allclose(adv[i], alone[0], atol=1e-6)
    assert torch.equal(D.realness(adv, groups), adv)
    with pytest.raises(ValueError, match="the group each face claims"):
        D(x)
    with pytest.raises(ValueError, match="set lambda_age_D=0 and lambda_age=0"):
        tiny(separate_D=True)  # the age head's default weights are not 0
    gan = tiny(separate_D=True, lambda_age_D=0.0, lambda_age=0.0)
    assert isinstance(gan.D, ag.GroupDiscriminators)
    before = [p.detach().clone() for p in gan.D.nets[1].parameters()]
    gan.train_step((smooth_faces(4), torch.tensor([0, 0, 2, 2])))  # targets differ from 0 and 2: some go to 1 or 3
    out = gan.train_step((smooth_faces(4), torch.tensor([1, 1, 1, 1])))
    assert all(math.isfinite(float(v)) for v in out.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, gan.D.nets[1].parameters()))  # group 1's network learned


def test_a_linear_auxiliary_classifier_has_one_layer_and_a_gradient_that_is_the_same_for_every_face():
    from helpers.layers import AgeAuxClassifier

    C = AgeAuxClassifier(image_size=8, n_out=K, linear=True)
    assert sum(isinstance(m, torch.nn.Linear) for m in C.modules()) == 1 and not any(
        isinstance(m, torch.nn.Conv2d) for m in C.modules())
    grads = []
    for seed in (0, 1):
        x = smooth_faces(1, 32, seed=seed).requires_grad_(True)
        C(x)[0, 2].backward()
        grads.append(x.grad)
    assert torch.allclose(grads[0], grads[1])
    gan = tiny(lambda_age_aux=1.0, age_aux_size=8, age_aux_linear=True)
    out = gan.train_step((smooth_faces(4), torch.arange(4) % K))
    assert "G_age_aux" in out and math.isfinite(float(out["G_age_aux"]))


def test_the_auxiliary_classifier_can_learn_the_real_groups_first_and_does_so_the_same_way_twice():
    x = ((smooth_faces(8, 32) + 1) * 127.5).round().to(torch.uint8)
    y = torch.arange(8) % K
    x[y == 1] = x[y == 1] // 4  # groups 0 and 1 differ in brightness: learnable
    accs = []
    for _ in range(2):
        gan = tiny(lambda_age_aux=1.0, age_aux_size=16, age_aux_ndf=4, age_aux_lr=1e-2, age_aux_pretrain=60)
        rng = torch.get_rng_state()
        accs.append(gan.pretrain_aux(x, y))
        assert torch.equal(rng, torch.get_rng_state())  # the GAN's random stream is untouched
    assert accs[0] == accs[1] and accs[0] > 0.5  # chance is 1/4
    assert tiny().pretrain_aux(x, y) is None  # no classifier, nothing to do
    with pytest.raises(ValueError, match="labels for"):
        gan.pretrain_aux(x, y[:3])


def test_the_real_face_setting_uses_what_worked_and_trains():
    from helpers import config

    s = config.AGEGAN_REAL_CPU
    assert s.separate_D and s.balanced and s.mask and s.residual and s.lambda_age_aux > 0 and s.age_aux_pretrain > 0
    assert s.lambda_age_D == 0 and s.lambda_age == 0  # the per-group networks replace the age head
    assert config.AGEGAN_REAL.separate_D and config.AGEGAN_REAL.age_aux_pretrain == s.age_aux_pretrain
    gan = ag.AgeGAN(s, image_size=32, n_layers_D=3, ngf=8, ndf=8, age_aux_size=16, age_aux_ndf=4)
    assert isinstance(gan.D, ag.GroupDiscriminators) and gan.C_age is not None
    x = smooth_faces(6, 32)
    y = torch.arange(6) % len(s.group_edges)
    assert gan.pretrain_aux(((x + 1) * 127.5).round().to(torch.uint8), y, steps=3, batch_size=4) is not None
    out = gan.train_step((x, y))
    assert all(math.isfinite(float(v)) for v in out.values())


def test_the_students_age_loss_also_scores_the_auxiliary_classifier():
    seen = []

    def my_age_loss_G(fake_logits, source, target):
        seen.append(fake_logits.shape)
        return ag.age_loss_G(fake_logits, source, target)

    gan = tiny(lambda_age_aux=1.0, age_aux_size=16, age_aux_ndf=4)
    gan.use(age_loss_G=my_age_loss_G)
    gan.train_step((smooth_faces(4), torch.arange(4) % K))
    assert len(seen) == 2 and all(s == (4, K) for s in seen)  # the discriminator's head and the classifier


def test_ema_generator_averages_resumes_and_is_what_is_used(tmp_path):
    x = (torch.rand(12, 3, 32, 32) * 255).to(torch.uint8)
    labels = torch.arange(12) % K

    def trainer(folder, **kw):
        torch.manual_seed(0)
        loader = BatchLoader(x, 4, labels=labels, seed=0)
        return Trainer(tiny(residual=True, ema=0.9, **kw), loader, folder, checkpoint_every=2, progress=False)

    t = trainer(tmp_path / "a")
    before = [p.clone() for p in t.model.G_ema.parameters()]
    t.fit(steps=4)
    gan = t.model
    assert gan.ema_updates == 4 and not any(p.requires_grad for p in gan.G_ema.parameters())
    moved = [not torch.equal(b, p) for b, p in zip(before, gan.G_ema.parameters())]
    apart = [not torch.equal(a, w) for a, w in zip(gan.G_ema.parameters(), gan.G.parameters())]
    assert any(moved) and any(apart)  # it follows the generator, a step behind
    y = smooth_faces(2)
    assert torch.allclose(gan.translate(y, 1), ag.translate(gan.G_ema, y, 1), atol=1e-6)  # the results use it
    # the loaded (and so the shipped) generator is the average
    G = ag.load_generator(tmp_path / "a")
    assert all(torch.allclose(a, b) for a, b in zip(G.parameters(), gan.G_ema.parameters()))
    # interrupted at step 2 and resumed: the same average as the run without a break
    t2 = trainer(tmp_path / "b")
    t2.fit(steps=2)
    t3 = trainer(tmp_path / "b")
    t3.fit(steps=4)
    assert t3.model.ema_updates == 4
    assert all(torch.equal(a, b) for a, b in zip(t3.model.G_ema.parameters(), gan.G_ema.parameters()))
    with pytest.raises(ValueError, match="ema is a decay per step"):
        tiny(ema=1.0)


def test_on_real_faces_the_students_age_loss_D_teaches_the_auxiliary_classifier_at_the_first_step(tmp_path):
    # Real faces: the per-group discriminators have no age head (lambda_age_D = 0), so the student's age_loss_D
    # is what teaches the auxiliary classifier the real groups before the GAN starts, and so it still trains a
    # network on Colab. The lesson waits for the first step, so a function given with use() after setup counts.
    from helpers import config

    s = replace(config.AGEGAN_REAL_CPU, image_size=32, n_layers_D=3, ngf=8, ndf=8, age_aux_size=16, age_aux_ndf=4,
                age_aux_pretrain=5, batch_size=4)
    gan = ag.AgeGAN(s)
    x = smooth_faces(8, 32)
    y = torch.arange(8) % len(s.group_edges)
    calls = []

    def mine(real_logits, source, fake_logits, target):
        calls.append((tuple(real_logits.shape), tuple(fake_logits.shape)))
        return F.cross_entropy(real_logits, source)

    gan.teach_aux_first(((x + 1) * 127.5).round().to(torch.uint8), y, verbose=False)
    assert not gan.aux_taught and not calls  # nothing is taught before training starts
    gan.use(age_loss_D=mine)
    before = [p.detach().clone() for p in gan.C_age.parameters()]
    gan.train_step((x[:4], y[:4]))
    lesson = [c for c in calls if c[1][0] == 0]  # the lesson: real faces only, no fakes
    assert len(lesson) == 5 and lesson[0][0][1] == len(s.group_edges) and gan.aux_taught
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.C_age.parameters()))
    n = len(calls)
    gan.train_step((x[4:], y[4:]))
    assert len(calls) == n + 1  # taught once; after that only the (zero-weighted) step term calls it

    # The flag is checkpointed: a resumed run is not taught again; a run put back to its untrained state is.
    loader = BatchLoader(((x + 1) * 127.5).round().to(torch.uint8), 4, labels=y, seed=0)
    t = Trainer(gan, loader, tmp_path / "run", config=gan.config, progress=False)
    untrained = ag.AgeGAN(s)
    assert Trainer(untrained, loader, tmp_path / "fresh", config=untrained.config, progress=False).state_dict()[
        "extra"]["aux_taught"] is False
    t.fit(steps=1)
    again = ag.AgeGAN(s, age_loss_D=mine)
    again.teach_aux_first(((x + 1) * 127.5).round().to(torch.uint8), y, verbose=False)
    Trainer(again, loader, tmp_path / "run", config=again.config, progress=False)  # resumes
    assert again.aux_taught
    n = len(calls)
    again.train_step((x[:4], y[:4]))
    assert len(calls) == n + 1
    old = ag.AgeGAN(s)
    old.load_extra_state({})  # a checkpoint from before the flag: written after the lesson (then given in setup)
    assert old.aux_taught


def test_coarse_colour_keeps_the_grey_change_and_blurs_only_its_colour():
    change = torch.zeros(1, 3, 32, 32)
    change[:, :, 10:14, 10:14] = torch.tensor([0.6, -0.2, 0.4]).view(1, 3, 1, 1)  # a small purple patch ...
    change[:, :, 20:24, 4:8] = -0.5  # ... and a small grey (darker) spot
    out = ag.coarse_colour(change, 4)
    grey_in, grey_out = change.mean(1), out.mean(1)
    assert torch.allclose(grey_in, grey_out, atol=1e-6)  # lighter / darker is kept, pixel for pixel
    colour_in, colour_out = change - grey_in[:, None], out - grey_out[:, None]
    assert colour_out.abs().amax() < 0.25 * colour_in.abs().amax()  # the patch's colour is spread thin
    assert torch.allclose(colour_out.sum((2, 3)), colour_in.sum((2, 3)), rtol=0.05, atol=1e-3)  # not removed
    torch.manual_seed(0)
    G = ag.AgeGenerator(K, ngf=8, n_enc_blocks=1, n_dec_blocks=1, style_dim=16, residual=True, mask=True,
                        colour_res=4)
    for p in G.decoder.to_rgb.parameters():  # any change it draws
        torch.nn.init.normal_(p, std=0.05)
    x, t = smooth_faces(2), torch.tensor([1, 2])
    with torch.no_grad():
        coarse = G(x, t)
        G.colour_res = 0
        fine = G(x, t)
    assert torch.allclose(coarse, (x + ag.coarse_colour(fine - x, 4)).clamp(-1, 1), atol=1e-6)  # the change, coarsened
    assert not torch.allclose(coarse, fine, atol=1e-3)
    gan = tiny(colour_res=4)
    assert gan.G.colour_res == 4 and ag.generator_from(gan.config, gan.G.state_dict()).colour_res == 4
