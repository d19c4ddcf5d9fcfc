"""The architecture diagrams (helpers.diagrams): measured from the course's own networks, written as PNGs."""

import torch
from torch import nn

from helpers import colab, diagrams
from helpers.cyclegan import PatchDiscriminator, receptive_field


def test_receptive_field_measured_from_the_layers_matches_the_formula():
    for n_layers, size in ((2, 34), (3, 70)):
        got, jump, _ = diagrams.receptive_field(PatchDiscriminator(ndf=4, n_layers=n_layers))
        assert got == size == receptive_field(n_layers)
        assert jump == 2 ** n_layers


def test_each_score_depends_on_exactly_its_box():
    """Without instance norm (which mixes the whole image), a score's gradient covers its computed box."""
    net = PatchDiscriminator(ndf=4, n_layers=3)
    for k, m in enumerate(net.net):
        if isinstance(m, nn.InstanceNorm2d):
            net.net[k] = nn.Identity()
    side, boxes = diagrams.patch_boxes(net, 64)
    assert side == 6
    for i, j in ((0, 0), (3, 3), (5, 2)):
        x = torch.randn(1, 3, 64, 64, requires_grad=True)
        net(x)[0, 0, i, j].backward()
        ys, xs = torch.nonzero(x.grad.abs().sum((0, 1)), as_tuple=True)
        box = (xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1)
        assert box == tuple(int(v) for v in boxes[i * side + j])


def test_diagram_url_is_built_from_the_repository_and_branch():
    url = diagrams.diagram_url("cyclegan")
    assert url == f"https://raw.githubusercontent.com/{colab.REPO}/{colab.BRANCH}/imgs/diagram_cyclegan.png"
    assert url in diagrams.embed("cyclegan", "alt")


def test_write_all_draws_every_diagram(tmp_path):
    paths = diagrams.write_all(tmp_path, dpi=30)
    assert [p.name for p in paths] == [f"diagram_{n}.png" for n in diagrams.NAMES]
    assert all(p.stat().st_size > 1000 for p in paths)
