"""DCGAN networks, losses and training step."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.dcgan import (
    DCGAN,
    Discriminator,
    Generator,
    discriminator_loss,
    generator_loss,
    generator_loss_minimax,
    weights_init,
)


def _params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def test_the_64px_networks_are_radfords():
    G, D = Generator(), Discriminator()  # nz=100, 64 base channels, 64x64
    # 100 -> 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3, and the mirror image
    assert [m.out_channels for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)] == [512, 256, 128, 64, 3]
    assert [m.out_channels for m in D.modules() if isinstance(m, torch.nn.Conv2d)] == [64, 128, 256, 512, 1]
    assert _params(G) == 3_576_704 and _params(D) == 2_765_568  # the PyTorch DCGAN tutorial's counts
    z = torch.randn(2, 100)
    x = G(z)
    assert x.shape == (2, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (2,)
    assert G(z[:, :, None, None]).shape == (2, 3, 64, 64)  # (B, nz, 1, 1) works too


@pytest.mark.parametrize("size", [16, 32, 128])
def test_other_sizes_by_the_number_of_layers(size):
    G, D = Generator(nz=8, ngf=4, image_size=size), Discriminator(ndf=4, image_size=size)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, 3, size, size) and D(x).shape == (3,)


def test_bad_image_size():
    with pytest.raises(ValueError, match="power of two"):
        Generator(image_size=48)


def test_conditional_networks_take_labels():
    G, D = Generator(nz=8, ngf=4, n_classes=3, image_size=32), Discriminator(ndf=4, n_classes=3, image_size=32)
    labels = torch.tensor([0, 1, 2, 1])
    x = G(torch.randn(4, 8), labels)
    assert x.shape == (4, 3, 32, 32) and D(x, labels).shape == (4,)
    soft = torch.tensor([[0.5, 0.5, 0.0]] * 4)  # half-way between two classes (an age slider)
    assert G(torch.randn(4, 8), soft).shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="conditional"):
        G(torch.randn(4, 8))
    with pytest.raises(ValueError, match="conditional"):
        D(x)


def test_weights_init_draws_from_n_0_002():
    torch.manual_seed(0)
    G = Generator().apply(weights_init)
    conv = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    bn = torch.cat([m.weight for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(conv.mean()) < 1e-3 and conv.std().item() == pytest.approx(0.02, rel=0.02)
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01) and bn.std().item() == pytest.approx(0.02, rel=0.2)


def test_losses():
    zero = torch.zeros(5)  # D = 1/2 everywhere: the game's equilibrium
    assert discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert generator_loss(zero).item() == pytest.approx(math.log(2))
    assert generator_loss_minimax(zero).item() == pytest.approx(-math.log(2))
    # When D confidently rejects the fakes, the minimax loss saturates; the non-saturating one does not.
    logit = torch.tensor([-8.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(generator_loss_minimax(logit), logit)
    (g_ns,) = torch.autograd.grad(generator_loss(logit), logit)
    assert abs(g_mm.item()) < 1e-3 and abs(g_ns.item()) > 0.99


def test_train_step_updates_both_players():
    torch.manual_seed(0)
    gan = DCGAN(nz=8, ngf=8, ndf=8, image_size=16, n_samples=4)
    g0 = [p.clone() for p in gan.G.parameters()]
    d0 = [p.clone() for p in gan.D.parameters()]
    out = gan.train_step(torch.rand(6, 3, 16, 16) * 2 - 1)
    assert set(out) == {"loss_D", "loss_G", "D_x", "D_G_z"}
    assert all(math.isfinite(float(v)) for v in out.values())
    assert 0 < float(out["D_x"]) < 1 and 0 < float(out["D_G_z"]) < 1
    assert any(not torch.equal(a, b) for a, b in zip(g0, gan.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, gan.D.parameters()))


def test_conditional_train_step_and_sampling_leave_no_trace():
    torch.manual_seed(0)
    gan = DCGAN(nz=8, ngf=8, ndf=8, image_size=16, n_classes=2, n_samples=4)
    out = gan.train_step((torch.rand(6, 3, 16, 16) * 2 - 1, torch.tensor([0, 1, 0, 1, 0, 1])))
    assert math.isfinite(float(out["loss_G"]))
    stats = gan.G.net[1].running_mean.clone()
    rng = torch.get_rng_state()
    a, b = gan.sample(), gan.sample()
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b)  # the fixed noise batch
    assert torch.equal(stats, gan.G.net[1].running_mean) and torch.equal(rng, torch.get_rng_state())
    assert gan.G.training
