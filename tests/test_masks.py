"""Degrees and masks: 1-based degrees, >= into hidden units, > into outputs."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mafkit import MADE
from mafkit.masks import check_order, hidden_degrees, hidden_mask, input_degrees, output_mask


def test_input_degrees_are_one_based_positions_in_the_order() -> None:
    order = torch.tensor([2, 0, 3, 1])
    degrees = input_degrees(order)
    assert degrees[order].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("dim", [2, 3, 7])
def test_hidden_degrees_cover_one_to_dim_minus_one(dim: int) -> None:
    degrees = hidden_degrees(dim - 1, dim)
    assert sorted(degrees.tolist()) == list(range(1, dim))


def test_hidden_degrees_work_for_a_single_variable() -> None:
    assert hidden_degrees(4, 1).tolist() == [1, 1, 1, 1]


def test_hidden_degrees_with_context_start_at_zero() -> None:
    assert set(hidden_degrees(6, 3, lowest=0).tolist()) == {0, 1, 2}


def test_hidden_mask_connects_equal_degrees_and_output_mask_does_not() -> None:
    d = torch.tensor([1, 2])
    assert hidden_mask(d, d).tolist() == [[1, 0], [1, 1]]
    assert output_mask(d, d).tolist() == [[0, 0], [1, 0]]


@pytest.mark.parametrize("order", [[0, 0, 1], [0, 1], [1, 2, 3]])
def test_an_order_that_is_not_a_permutation_is_rejected(order: list) -> None:
    with pytest.raises(ValueError, match="permutation of 0..2"):
        check_order(order, 3)


def test_a_float_order_is_rejected() -> None:
    with pytest.raises(TypeError, match="integers"):
        check_order(torch.tensor([0.0, 1.0]), 2)


@settings(max_examples=40, deadline=None)
@given(dim=st.integers(1, 8), data=st.data())
def test_mask_product_connects_each_output_to_exactly_its_predecessors(dim: int, data) -> None:
    order = data.draw(st.permutations(list(range(dim))))
    extra = data.draw(st.integers(0, 3))
    n_hidden = data.draw(st.integers(1, 3))
    made = MADE(dim, hidden=(max(dim - 1, 1) + extra,) * n_hidden, order=order)
    degree = input_degrees(torch.tensor(order))
    expected = degree[None, :] < degree[:, None]
    assert torch.equal(made.connectivity(), expected)


@settings(max_examples=30, deadline=None)
@given(dim=st.integers(1, 8), data=st.data())
def test_with_context_every_output_is_still_strict_and_complete(dim: int, data) -> None:
    order = data.draw(st.permutations(list(range(dim))))
    made = MADE(dim, hidden=(dim + 1, dim + 1), context_dim=2, order=order)
    degree = input_degrees(torch.tensor(order))
    assert torch.equal(made.connectivity(), degree[None, :] < degree[:, None])
