"""The encoder that inverts the conditional DCGAN: shapes, training lowers its losses, refinement, resume, aging a photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import encoder as en
from helpers.cache import BatchLoader
from helpers.cdcgan import frozen_generator
from helpers.dcgan import Generator, weights_init
from helpers.training import Trainer

NZ, K = 8, 2


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    g = Generator(NZ, 8, K, 16).apply(weights_init)
    return frozen_generator(g, n_batches=2, batch_size=16)


def _faces(G, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    z, y = torch.randn(n, NZ, generator=g), torch.arange(n) % K
    with torch.no_grad():
        return G(z, y), y, z


@pytest.mark.parametrize("size", [16, 32, 64])
def test_encoder_shapes_and_no_final_activation(size):
    E = en.Encoder(nz=12, nef=4, image_size=size)
    z = E(torch.randn(3, 3, size, size) * 3)
    assert z.shape == (3, 12)
    assert isinstance(list(E.modules())[-1], torch.nn.Linear)  # nothing squashes the noise
    assert [m.kernel_size for m in E.modules() if isinstance(m, torch.nn.Conv2d)][0] == (5, 5)


def test_bad_mode(G):
    with pytest.raises(ValueError, match="mode"):
        en.InversionEncoder(G, mode="magic")


def _latent_error(model, z, y):
    with torch.no_grad():
        x = model.G(z, y)
    return F.mse_loss(en.encode(model.E, x), z).item()


def test_seed_training_lowers_the_latent_loss_on_a_fixed_batch(G):
    torch.manual_seed(0)
    model = en.InversionEncoder(G, "seed", nef=8, lr=2e-3)
    g = torch.Generator().manual_seed(1)
    z, y = torch.randn(32, NZ, generator=g), torch.arange(32) % K
    before = _latent_error(model, z, y)
    real = torch.zeros(16, 3, 16, 16)
    for _ in range(40):
        out = model.train_step((real, torch.zeros(16, dtype=torch.long)))
    assert set(out) == {"latent", "pixel_fake", "loss"}
    assert _latent_error(model, z, y) < 0.8 * before


def test_real_face_training_lowers_the_image_loss_on_a_fixed_batch(G):
    torch.manual_seed(0)
    model = en.InversionEncoder(G, "real", nef=8, lr=2e-3)
    x, y, _ = _faces(G, 16, seed=3)
    x = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)  # "real" faces: near the generator's range, not in it

    def pixel():
        return en.reconstruction_error(x, en.decode(G, en.encode(model.E, x), y))

    before = pixel()
    for _ in range(30):
        out = model.train_step((x, y))
    assert {"latent", "pixel_real", "pixel_fake", "loss"} == set(out)
    assert pixel() < before
    assert not any(p.requires_grad for p in G.parameters())  # the generator stayed frozen


def test_refinement_lowers_the_reconstruction_error(G):
    x, y, z_true = _faces(G, 6, seed=5)
    z0 = torch.randn(6, NZ, generator=torch.Generator().manual_seed(9))  # a poor first guess
    z, hist = en.refine_latents(G, x, y, z0, steps=60, lr=0.05)
    assert len(hist) == 61 and hist[-1] < 0.5 * hist[0]
    assert en.reconstruction_error(x, en.decode(G, z, y)) < en.reconstruction_error(x, en.decode(G, z0, y))
    # each face is refined on its own: alone or in a batch, the same answer
    z_one, _ = en.refine_latents(G, x[:1], y[:1], z0[:1], steps=10)
    z_all, _ = en.refine_latents(G, x, y, z0, steps=10)
    assert torch.allclose(z_one, z_all[:1], atol=1e-5)


def test_sharpness_sees_blur():
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    blurred = F.avg_pool2d(x, 3, 1, 1)
    assert en.sharpness(blurred) < 0.5 * en.sharpness(x)


def test_resume_and_age_a_photo(G, tmp_path):
    x = (torch.rand(12, 3, 16, 16) * 255).to(torch.uint8)
    labels = torch.arange(12) % K
    info = {"run": "test", "step": 0, "groups": ["20-30", "60+"], "ngf": 8}

    def trainer(folder):
        torch.manual_seed(0)
        model = en.InversionEncoder(G, "real", nef=4, generator_info=info)
        return Trainer(model, BatchLoader(x, 4, labels=labels, seed=0), folder, checkpoint_every=2, progress=False)

    reference = trainer(tmp_path / "reference")
    reference.fit(steps=4)
    t = trainer(tmp_path / "run")
    t.fit(steps=2)
    t2 = trainer(tmp_path / "run")
    assert t2.step == 2
    t2.fit(steps=4)
    assert t2.history.to_frame().equals(reference.history.to_frame())

    en._save_generator(G, tmp_path / "run" / "generator.pt", info)
    G2 = en.load_frozen_generator(tmp_path / "run" / "generator.pt")
    z = torch.randn(3, NZ)
    assert torch.allclose(G2(z, torch.tensor([0, 1, 0])), G(z, torch.tensor([0, 1, 0])), atol=1e-6)

    from helpers.age_photo import EncoderAger

    ager = EncoderAger(en.load_inversion(tmp_path / "run", "cpu"), tmp_path / "run")
    assert ager.labels == ["20-30", "60+"] and ager.steps == 4
    photo = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    aged = ager.age(photo, size=40)
    assert len(aged.images) == K and aged.images[0].shape == (40, 40, 3)
    with pytest.raises(FileNotFoundError):
        en.load_inversion(tmp_path / "empty", "cpu")
