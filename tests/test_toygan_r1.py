"""The R1 penalty and its demo on notebook 02's warm-up (helpers.toygan)."""

import torch
from torch import nn

from helpers import toygan


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm():
    D = nn.Linear(2, 1)
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[3.0, -4.0]]))
    real = torch.randn(16, 2)
    assert torch.isclose(toygan.r1_penalty(D, real), torch.tensor(25.0))


def test_r1_penalty_is_differentiable_in_the_discriminator():
    D = toygan.PointDiscriminator(hidden=8)
    toygan.r1_penalty(D, torch.randn(8, 2)).backward()
    assert all(p.grad is not None for p in D.parameters() if p.dim() > 1)  # a bias has no slope


def test_r1_step_logs_the_usual_numbers_and_r1_and_trains_both_players():
    s = toygan.ToyGANSettings(steps=3, n_frames=2, n_points=64, hidden=8, batch_size=16)
    gan = toygan.ToyGAN(s, step_fn=toygan.r1_step(1.0))
    before = [p.clone() for p in (*gan.G.parameters(), *gan.D.parameters())]
    out = gan.train_step(toygan.ring_of_gaussians(16, seed=1))
    assert set(out) == {"loss_D", "loss_G", "R1", "D_x", "D_G_z"}
    after = list((*gan.G.parameters(), *gan.D.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before, after))


def test_compare_r1_plays_the_same_game_with_and_without_the_penalty():
    s = toygan.ToyGANSettings(steps=8, n_frames=2, n_points=64, hidden=8, batch_size=16)
    points = toygan.ring_of_gaussians(s.n_points, s.modes, s.radius, s.std, s.seed)
    frames, numbers = toygan.compare_r1(points, s, gammas=(0.0, 1.0))
    assert set(frames) == set(numbers) == {0.0, 1.0}
    assert len(frames[1.0]) == 2
    for n in numbers.values():
        assert set(n) == {"|D(x) - 1/2|", "loss_G swing", "R1 (slope^2 on data)", "clouds covered"}
        assert n["R1 (slope^2 on data)"] >= 0


def test_show_frames_takes_titles():
    s = toygan.ToyGANSettings(steps=2, n_frames=2, n_points=32, hidden=8, batch_size=8)
    points = toygan.ring_of_gaussians(s.n_points)
    frames, _ = toygan.train_toy(toygan.ToyGAN(s), points)
    fig = toygan.show_frames(frames, points, ncols=2, titles=["a", "b"])
    assert fig.axes[0].get_title().startswith("a\n")
