"""The toy MLPs: contract, options (scale, Fourier features, activation), head configuration."""

from __future__ import annotations

import pytest
import torch

from gdiff.nets.toy import ToyDiscriminator, ToyGenerator


def test_scale_preconditions_inputs_and_outputs():
    """G with scale s on s * x equals s * (G with scale 1 on x), same weights."""
    torch.manual_seed(0)
    plain = ToyGenerator((2,), width=16, depth=2, fourier_features=4)
    scaled = ToyGenerator((2,), width=16, depth=2, fourier_features=4, scale=7.0)
    scaled.load_state_dict(plain.state_dict())
    x, t, z = torch.randn(5, 2), torch.rand(5), torch.randn(5, 2)
    torch.testing.assert_close(scaled(7 * x, t, z), 7 * plain(x, t, z))
    D1 = ToyDiscriminator((2,), width=16, depth=2, pairwise=False, heads=["regression"])
    D7 = ToyDiscriminator((2,), width=16, depth=2, pairwise=False, heads=["regression"], scale=7.0)
    D7.load_state_dict(D1.state_dict())
    out1, out7 = D1(x, t, heads=("regression",)), D7(7 * x, t, heads=("regression",))
    torch.testing.assert_close(out7["logits"], out1["logits"])
    torch.testing.assert_close(out7["regression"], 7 * out1["regression"])


@pytest.mark.parametrize("activation, module", [("silu", torch.nn.SiLU), ("relu", torch.nn.ReLU),
                                                ("leaky_relu", torch.nn.LeakyReLU)])
def test_options_keep_the_contract(activation, module):
    torch.manual_seed(0)
    G = ToyGenerator((2,), width=16, depth=2, z_dim=8, fourier_features=4, activation=activation)
    D = ToyDiscriminator((2,), width=16, depth=2, pairwise=False, fourier_features=4, activation=activation)
    for net in (G, D):  # the option is used, and no other activation is
        kinds = {type(m) for m in net.modules() if isinstance(m, (torch.nn.SiLU, torch.nn.ReLU, torch.nn.LeakyReLU))}
        assert kinds == {module}
    x, t = torch.randn(6, 2), torch.rand(6)
    assert G(x, t, torch.randn(6, 8)).shape == (6, 2) and G.z_dim == 8
    assert not torch.allclose(G(x, t, torch.randn(6, 8)), G(x, t, torch.randn(6, 8))), "z must matter"
    assert torch.equal(D(x, t, torch.randn(6, 2)), D(x, t, torch.randn(6, 2))), "marginal D must ignore x_t"
    assert not torch.allclose(D(x, t), D(x + 0.5, t))


@pytest.mark.parametrize("kwargs, match", [
    ({"scale": 0}, "scale"), ({"activation": "gelu"}, "activation"), ({"heads": ["classifier"]}, "heads"),
    ({"depth": 0}, "depth"), ({"data_shape": (1, 8, 8)}, "vector data"),
])
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ToyDiscriminator(**{"data_shape": (2,), **kwargs})
