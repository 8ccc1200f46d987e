"""What chapter 6 says about other libraries, checked by running them.

Chapter 6 (section "Keeping the scales finite") states that nflows 0.14 computes the
scale of its masked affine layer as ``softplus(a) + 1e-3`` (the sigmoid version left as a
comment) and multiplies the data by it on the way to noise, and that zuko 1.6.0's MAF
soft-clamps its log-scale as ``a / (1 + |a| / ln 1000)``. These tests run both libraries
(installed with the ``bench`` extra, which ``make install`` includes) so that a sentence
fails here, not silently in the book, if a library changes.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
import zuko
from nflows.distributions.normal import StandardNormal
from nflows.flows.base import Flow
from nflows.transforms import autoregressive

FEATURES = 3


class FixedParams(torch.nn.Module):
    """Stands in for nflows' MADE: returns the same raw (scale, shift) pairs for every row."""

    def __init__(self, raw_scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        # nflows reads the MADE's output as (batch, features, 2): [..., 0] the raw scale,
        # [..., 1] the shift (MaskedAffineAutoregressiveTransform._unconstrained_scale_and_shift).
        self.register_buffer("params", torch.stack([raw_scale, shift], dim=-1).reshape(-1))

    def forward(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.params.expand(inputs.shape[0], -1)


def masked_affine(raw_scale: torch.Tensor, shift: torch.Tensor):
    transform = autoregressive.MaskedAffineAutoregressiveTransform(
        features=FEATURES, hidden_features=8
    )
    transform.autoregressive_net = FixedParams(raw_scale, shift)
    return transform


def test_nflows_masked_affine_scale_is_softplus_plus_1e_3_and_not_bounded_above():
    raw_scale = torch.tensor([-30.0, 0.0, 10.0])
    shift = torch.tensor([0.5, -1.0, 2.0])
    x = torch.randn(7, FEATURES, generator=torch.Generator().manual_seed(0))
    z, log_det = masked_affine(raw_scale, shift)(x)

    scale = F.softplus(raw_scale) + 1e-3
    assert torch.allclose(z, scale * x + shift, atol=1e-6)
    assert torch.allclose(log_det, torch.log(scale).sum().expand(7), atol=1e-6)
    # Not the sigmoid form, whose scale stays below 1.001: at a = 10 the scale is about 10.
    assert (z[:, 2] - shift[2]).abs().max() > 5 * x[:, 2].abs().max()
    sigmoid_scale = torch.sigmoid(raw_scale + 2.0) + 1e-3
    assert not torch.allclose(z, sigmoid_scale * x + shift, atol=1e-3)
    # Bounded below by the epsilon 1e-3.
    assert torch.allclose(z[:, 0], 1e-3 * x[:, 0] + shift[0], atol=1e-6)


def test_nflows_leaves_the_sigmoid_scale_as_a_comment():
    source = inspect.getsource(autoregressive.MaskedAffineAutoregressiveTransform)
    commented = "# scale = torch.sigmoid(unconstrained_scale + 2.0) + self._epsilon"
    assert commented in source
    assert "scale = F.softplus(unconstrained_scale) + self._epsilon" in source


def test_nflows_log_prob_multiplies_the_data_by_the_scale_on_the_way_to_noise():
    raw_scale = torch.tensor([1.0, -2.0, 3.0])
    shift = torch.tensor([0.1, 0.2, -0.3])
    flow = Flow(masked_affine(raw_scale, shift), StandardNormal([FEATURES]))
    x = torch.randn(5, FEATURES, generator=torch.Generator().manual_seed(1))

    scale = F.softplus(raw_scale) + 1e-3
    noise = scale * x + shift  # data -> noise multiplies by the scale
    base = torch.distributions.Normal(0.0, 1.0).log_prob(noise).sum(dim=1)
    expected = base + torch.log(scale).sum()
    assert torch.allclose(flow.log_prob(x), expected, atol=1e-5)


def test_zuko_maf_soft_clamps_its_log_scale_to_log_1000():
    # Chapter 6: zuko's affine layer uses the soft clamp a / (1 + |a| / b) with
    # b = ln(1000) (its minimum slope 1e-3), the form mafkit uses.
    bound = math.log(1000.0)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(2))
    for raw in (1e6, -1e6, 3.0, 0.01):
        flow = zuko.flows.MAF(2, transforms=1)
        last = flow.transform.transforms[0].hyper[-1]
        with torch.no_grad():  # every output of the layer, shift and raw log-scale, = raw
            last.weight.zero_()
            last.bias.fill_(raw)
        transform = flow().transform
        log_det = transform.log_abs_det_jacobian(x, transform(x))
        log_scale = raw / (1 + abs(raw) / bound)
        assert torch.allclose(log_det, torch.full((5,), 2 * log_scale), rtol=1e-5)
    assert abs(1e6 / (1 + 1e6 / bound) - bound) < 1e-3  # the bound is reached, not passed
