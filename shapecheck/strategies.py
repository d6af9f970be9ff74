"""hypothesis strategies for property tests of a user's own model.

    from shapecheck.strategies import valid_inputs

    @given(shape=valid_inputs(Net(), "3xHxW", low=32, high=96))
    def test_logits_per_sample(shape):
        assert Net()(torch.randn(2, *shape)).shape == (2, 10)

The accepted sizes come from the sizes solver (one meta-device forward per size). It runs
on the first draw, not at import, so collecting tests stays fast.
"""
from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from shapecheck.sizes import Solver, parse_template
from shapecheck.spec import InputSpec, parse_dtype


def valid_inputs(model: Any, input: str = "3xHxW", *, low: int = 8, high: int = 256,  # noqa: A002
                 batch: int | None = None) -> st.SearchStrategy[tuple[int, ...]]:
    """Sample shapes (letters in ``input`` filled in) that ``model`` accepts; with ``batch``,
    full shapes ``(B, ...)`` with 1 <= B <= batch."""
    template, dtype = parse_template(input)
    if None not in template:
        raise ValueError(f"valid_inputs({input!r}): mark the sizes to vary with letters, e.g. 3xHxW")

    def accepted() -> st.SearchStrategy[tuple[int, ...]]:
        spec = InputSpec(tuple(low if d is None else d for d in template),
                         parse_dtype(dtype) if dtype else InputSpec((1,)).dtype)
        sizes = Solver(model, [spec], template).sweep(low, high).accepted
        if not sizes:
            raise ValueError(f"{type(model).__name__} accepts no {input} with sizes from {low} to {high}")
        shapes = st.sampled_from(sizes).map(lambda s: tuple(s if d is None else d for d in template))
        if batch is None:
            return shapes
        return st.tuples(st.integers(1, batch), shapes).map(lambda bs: (bs[0], *bs[1]))

    return st.deferred(accepted)
