"""Whole flows: log-det, normalisation, duality, sampling, context handling, checkpoints."""

import io

import pytest
import torch
from conftest import perturbed as _perturbed
from torch.func import functional_call, grad, jacrev, vmap

from mafkit import IAF, MAF, GaussianMADE, MixtureOfGaussians, fit
from mafkit.checks import integral_2d, inverse_error, jacobian, log_det_error
from mafkit.data import two_moons

BOX = ((-10.0, 10.0), (-10.0, 10.0))


@pytest.mark.parametrize("cls", [MAF, IAF])
@pytest.mark.parametrize("context_dim", [0, 2])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_flow_log_det_matches_slogdet(cls, context_dim: int, mode: str) -> None:
    flow = _perturbed(cls(3, n_layers=3, hidden=(12,), context_dim=context_dim)).double()
    flow.train(mode == "train")
    x = torch.randn(3, 3, dtype=torch.float64)
    c = torch.randn(3, context_dim, dtype=torch.float64) if context_dim else None
    assert log_det_error(flow, x, c) < 1e-9
    assert inverse_error(flow, x, c) < 1e-9


def test_flow_with_batch_norm_log_det_matches_slogdet_in_eval_mode() -> None:
    flow = _perturbed(MAF(3, n_layers=3, hidden=(12,), batch_norm=True)).double().eval()
    x = torch.randn(4, 3, dtype=torch.float64)
    assert log_det_error(flow, x) < 1e-9
    assert inverse_error(flow, x) < 1e-9


@pytest.mark.parametrize(
    "make",
    [
        lambda: MAF(2, n_layers=3, hidden=(16,)),
        lambda: IAF(2, n_layers=3, hidden=(16,)),
        lambda: MAF(2, n_layers=2, hidden=(16,), base="mog", n_components=3),
        lambda: MAF(2, n_layers=3, hidden=(16,), batch_norm=True).eval(),
        lambda: GaussianMADE(2, hidden=(16,)),
    ],
    ids=["maf", "iaf", "maf-mog", "maf-batchnorm", "gaussian-made"],
)
def test_untrained_flow_density_integrates_to_one(make) -> None:
    flow = _perturbed(make(), 0.1)
    assert abs(integral_2d(flow.log_prob, BOX, n=400) - 1) < 2e-3


@pytest.mark.parametrize("context", [[-1.0], [0.0], [2.0]])
def test_conditional_flow_density_integrates_to_one_for_each_context(context: list) -> None:
    flow = _perturbed(MAF(2, n_layers=2, hidden=(16,), context_dim=1), 0.1)
    c = torch.tensor(context)
    total = integral_2d(lambda g: flow.log_prob(g, c.expand(len(g), 1)), BOX, n=300)
    assert abs(total - 1) < 2e-3


def test_trained_flow_with_batch_norm_integrates_to_one_and_ignores_the_batch() -> None:
    x = two_moons(512)
    flow = MAF(2, n_layers=3, hidden=(32,), batch_norm=True)
    fit(flow, x, two_moons(128), epochs=5, batch_size=64, lr=3e-3)
    assert not flow.training
    assert abs(integral_2d(flow.log_prob, ((-3, 4), (-3, 3)), n=300) - 1) < 5e-3
    point = x[:1]
    assert torch.equal(flow.log_prob(point), flow.log_prob(torch.cat([point, x[1:50] * 3]))[:1])


def test_iaf_from_maf_runs_the_same_layers_the_other_way() -> None:
    maf = _perturbed(MAF(4, n_layers=3, hidden=(12,))).double()
    iaf = IAF.from_maf(maf)
    u = torch.randn(5, 4, dtype=torch.float64)
    maf_z, maf_ld = maf(u)
    iaf_x, iaf_ld = iaf.inverse(u)
    assert torch.equal(maf_z, iaf_x) and torch.equal(maf_ld, iaf_ld)
    assert torch.allclose(iaf(u)[0], maf.inverse(u)[0])
    assert set(map(id, iaf.parameters())) == set(map(id, maf.parameters()))


@pytest.mark.parametrize("cls", [MAF, IAF])
def test_sample_and_log_prob_agrees_with_log_prob_of_the_sample(cls) -> None:
    flow = _perturbed(cls(3, n_layers=2, hidden=(12,))).double()
    x, log_p = flow.sample_and_log_prob(6)
    assert x.dtype == torch.float64
    assert torch.allclose(flow.log_prob(x), log_p, atol=1e-8)


def test_sample_accepts_one_shared_context_or_one_per_row() -> None:
    flow = MAF(2, n_layers=2, hidden=(8,), context_dim=3)
    assert flow.sample(5, torch.randn(3)).shape == (5, 2)
    assert flow.sample(5, torch.randn(5, 3)).shape == (5, 2)
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        flow.sample(5, torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"shape \(3,\) or \(5, 3\)"):
        flow.sample(5, torch.randn(2))


def test_shared_context_gives_the_same_samples_as_repeated_context() -> None:
    flow = MAF(2, n_layers=2, hidden=(8,), context_dim=3)
    c = torch.randn(3)
    torch.manual_seed(1)
    shared = flow.sample(4, c)
    torch.manual_seed(1)
    repeated = flow.sample(4, c.expand(4, 3))
    assert torch.equal(shared, repeated)


def test_flow_round_trips_through_a_weights_only_checkpoint() -> None:
    flow = MAF(3, n_layers=2, hidden=(8,), batch_norm=True, base="mog", n_components=2)
    buffer = io.BytesIO()
    torch.save(flow.state_dict(), buffer)
    buffer.seek(0)
    copy = MAF(3, n_layers=2, hidden=(8,), batch_norm=True, base="mog", n_components=2)
    copy.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(4, 3)
    assert torch.equal(flow.eval().log_prob(x), copy.eval().log_prob(x))


def test_flow_moves_to_float64_and_samples_in_it() -> None:
    flow = MAF(2, n_layers=2, hidden=(8,), base="mog", n_components=2).to(torch.float64)
    assert flow.sample(3).dtype == torch.float64
    flow = MAF(2, n_layers=2, hidden=(8,)).to(torch.float64)
    assert flow.sample(3).dtype == torch.float64


def test_gaussian_made_is_a_product_of_gaussian_conditionals() -> None:
    made = _perturbed(GaussianMADE(3, hidden=(8,))).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    shift, log_scale = made.transforms[0].shift_and_log_scale(x, None)
    expected = torch.distributions.Normal(shift, log_scale.exp()).log_prob(x).sum(1)
    assert torch.allclose(made.log_prob(x), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 0}, "dim must be >= 1"),
        ({"dim": 2, "n_layers": 0}, "n_layers must be >= 1"),
        ({"dim": 2, "order": "sideways"}, "order must be"),
        ({"dim": 2, "order": [[0, 1]]}, "list of 5 permutations"),
        ({"dim": 2, "base": "cauchy"}, "base must be"),
        ({"dim": 2, "base": MixtureOfGaussians(3)}, "density on R\\^2"),
        ({"dim": 2, "embedding": torch.nn.Identity()}, "needs a context"),
    ],
)
def test_maf_rejects_nonsense_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        MAF(**kwargs)


def test_log_prob_rejects_points_of_the_wrong_dimension() -> None:
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\), got \(4, 3\)"):
        MAF(2).log_prob(torch.randn(4, 3))


def test_inverse_rejects_non_finite_noise() -> None:
    with pytest.raises(ValueError, match="z contains NaN"):
        MAF(2).inverse(torch.tensor([[0.0, float("inf")]]))


def test_embedding_network_receives_the_context() -> None:
    embedding = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh())
    flow = MAF(2, n_layers=2, hidden=(8,), context_dim=3, embedding=embedding)
    x, c = torch.randn(4, 2), torch.randn(4, 3, requires_grad=True)
    flow.log_prob(x, c).sum().backward()
    assert c.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        flow.log_prob(x, torch.randn(4, 5))


def test_random_orders_differ_between_layers() -> None:
    torch.manual_seed(0)
    flow = MAF(6, n_layers=3, order="random")
    orders = [t.order.tolist() for t in flow.transforms]
    assert len({tuple(o) for o in orders}) > 1


def test_a_float64_embedding_network_is_accepted() -> None:
    embedding = torch.nn.Linear(3, 4).double()
    flow = MAF(2, n_layers=1, hidden=(8,), context_dim=3, embedding=embedding).double()
    x, c = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    assert flow.log_prob(x, c).dtype == torch.float64


def test_iaf_from_maf_refuses_a_flow_with_batch_norm() -> None:
    with pytest.raises(ValueError, match="without BatchNorm"):
        IAF.from_maf(MAF(2, n_layers=2, hidden=(8,), batch_norm=True))


def test_set_batch_norm_statistics_leaves_the_flow_in_evaluation_mode() -> None:
    flow = MAF(2, n_layers=2, hidden=(8,), batch_norm=True).train()
    x = two_moons(256)
    flow.set_batch_norm_statistics(x)
    assert not flow.training
    # Sampling then uses the stored statistics: the samples score what they were drawn with.
    samples, log_p = flow.sample_and_log_prob(64)
    torch.testing.assert_close(flow.log_prob(samples), log_p, rtol=1e-4, atol=1e-4)


# -------------------------------------------------------------- batch independence


@pytest.mark.parametrize("batch", [1, 1023, 1024, 4096])
@pytest.mark.parametrize("grad_mode", [True, False])
def test_a_points_density_does_not_depend_on_its_batch(batch: int, grad_mode: bool) -> None:
    flow = _perturbed(MAF(4, n_layers=3, hidden=(64, 64), batch_norm=True), 0.05).eval()
    x = torch.randn(batch, 4)
    with torch.set_grad_enabled(grad_mode):
        in_batch = flow.log_prob(x)[:1]
        alone = flow.log_prob(x[:1])
    torch.testing.assert_close(in_batch, alone, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- torch ecosystem


@pytest.mark.parametrize("batch", [1, 2048])
def test_torch_func_grad_of_the_log_likelihood_matches_autograd(batch: int) -> None:
    flow = _perturbed(MAF(3, n_layers=2, hidden=(16,))).double()
    x = torch.randn(batch, 3, dtype=torch.float64)
    params = {k: v.detach() for k, v in flow.named_parameters()}

    def nll(p: dict) -> torch.Tensor:
        z, log_det = functional_call(flow, p, (x,))
        return -(flow.base.log_prob(z) + log_det).mean()

    got = grad(nll)(params)
    (-flow.log_prob(x).mean()).backward()
    for name, param in flow.named_parameters():
        torch.testing.assert_close(got[name], param.grad, rtol=1e-10, atol=1e-12)


def test_vmap_of_jacrev_gives_each_points_jacobian() -> None:
    flow = _perturbed(MAF(3, n_layers=2, hidden=(16,))).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    per_point = vmap(jacrev(lambda v: flow.forward(v[None])[0][0]))(x)
    expected = jacobian(lambda v: flow.forward(v)[0], x)
    torch.testing.assert_close(per_point, expected)
    _, log_det = flow.forward(x)
    torch.testing.assert_close(torch.linalg.slogdet(per_point)[1], log_det)


@pytest.mark.slow
def test_torch_compile_of_log_prob_traces_and_agrees() -> None:
    # aot_eager: the whole dynamo and autograd tracing, without generating C++ code (fast).
    flow = _perturbed(MAF(3, n_layers=2, hidden=(16,)))
    compiled = torch.compile(flow.log_prob, backend="aot_eager")
    x = torch.randn(257, 3)
    torch.testing.assert_close(compiled(x), flow.log_prob(x))
    with pytest.raises(ValueError, match="NaN or infinite"):
        compiled(torch.full((4, 3), float("nan")))


@pytest.mark.slow
def test_torch_compile_with_inductor_trains_and_agrees() -> None:
    flow = _perturbed(MAF(3, n_layers=2, hidden=(16,)))
    compiled = torch.compile(flow.log_prob)
    x = torch.randn(4096, 3)
    torch.testing.assert_close(compiled(x), flow.log_prob(x), rtol=1e-5, atol=1e-5)
    compiled(x[:512]).mean().backward()
    assert all(p.grad is not None for p in flow.parameters())
