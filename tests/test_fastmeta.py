"""shapecheck's own shape arithmetic (shapecheck/fastmeta.py) against torch's real meta kernels."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecheck import fastmeta

aten = torch.ops.aten
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
dtypes = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64])


def _meta(shape, dtype=torch.float32, layout="contiguous"):
    t = torch.empty(shape, dtype=dtype, device="meta")
    if layout == "channels_last" and len(shape) == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "transposed" and len(shape) >= 2:
        return torch.empty(shape[::-1], dtype=dtype, device="meta").transpose(0, -1)
    return t


def _same(func, args, kwargs=None):
    kwargs = kwargs or {}
    try:
        ours = fastmeta.outputs(func, args, kwargs)
    except RuntimeError:  # shapecheck raises where the real kernels do
        with pytest.raises(RuntimeError):
            func(*[a.new_empty(a.shape, device="cpu") if isinstance(a, torch.Tensor) else a for a in args],
                 **kwargs)
        return False
    try:
        real = func(*args, **kwargs)
    except Exception:
        assert ours is None, f"{func} raises in torch but not in shapecheck"
        return False
    if ours is None:
        return False
    pairs = zip(ours, real) if isinstance(real, tuple) else [(ours, real)]
    for a, b in pairs:
        assert (a.shape, a.stride(), a.dtype, a.device.type) == (b.shape, b.stride(), b.dtype, "meta"), func
    return True


layouts = st.sampled_from(["contiguous", "channels_last", "transposed"])


@settings(max_examples=80, deadline=None)
@given(shape=shapes, dtype=dtypes, layout=layouts,
       op=st.sampled_from([aten.relu.default, aten.gelu.default, aten.sigmoid.default, aten.silu.default,
                           aten.tanh.default, aten.hardswish.default, aten.hardsigmoid.default]))
def test_unary_ops(shape, dtype, layout, op):
    _same(op, (_meta(shape, dtype, layout),))


@settings(max_examples=120, deadline=None)
@given(a=shapes, b=shapes, da=dtypes, db=dtypes, scalar=st.booleans(),
       op=st.sampled_from([aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor]))
def test_binary_ops_broadcast_and_promote(a, b, da, db, scalar, op):
    x = _meta(a, da)
    y = 2.5 if scalar else _meta(b[-len(a):] if len(b) > len(a) else b, db)
    try:
        op(x, y)
    except RuntimeError:
        assert fastmeta.outputs(op, (x, y), {}) is None  # torch rejects it; so must we
        return
    _same(op, (x, y))


@settings(max_examples=120, deadline=None)
@given(a=shapes, b=shapes, da=dtypes, db=st.sampled_from([torch.float32, torch.float64, torch.int64]),
       scalar=st.booleans(), op=st.sampled_from([aten.add_.Tensor, aten.sub_.Tensor, aten.mul_.Tensor,
                                                 aten.div_.Tensor]))
def test_in_place_binary_ops_return_their_input(a, b, da, db, scalar, op):
    x = _meta(a, da)
    y = 2.5 if scalar else _meta(b[-len(a):] if len(b) > len(a) else b, db)
    ours = fastmeta.outputs(op, (x, y), {})
    try:
        real = op(x, y)
    except RuntimeError:
        assert ours is None  # torch rejects it (a shape it cannot broadcast into, a dtype it cannot cast)
        return
    assert ours is None or (ours is x and real is x and tuple(x.shape) == a)


def test_a_residual_add_in_place_needs_no_kernel():
    x, y = _meta((2, 8, 4, 4), layout="channels_last"), _meta((2, 8, 4, 4))
    assert fastmeta.outputs(aten.add_.Tensor, (x, y), {}) is x
    assert fastmeta.outputs(aten.mul_.Tensor, (x, _meta((8, 1, 1))), {}) is x
    assert fastmeta.outputs(aten.add_.Tensor, (_meta((8, 1, 1)), x), {}) is None  # cannot grow in place


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 6), k=st.integers(1, 6), n=st.integers(1, 6), bias_rows=st.booleans(), dtype=dtypes)
def test_addmm(m, k, n, bias_rows, dtype):
    bias = _meta((m, n) if bias_rows else (n,), dtype)
    assert _same(aten.addmm.default, (bias, _meta((m, k), dtype), _meta((k, n), dtype)))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=5).map(tuple), dtype=dtypes, layout=layouts,
       training=st.booleans())
def test_batch_norm(shape, dtype, layout, training):
    x = _meta(shape, dtype, layout)
    c = torch.empty(shape[1], dtype=dtype, device="meta")
    _same(aten.native_batch_norm.default, (x, c, c, c, c, training, 0.1, 1e-5))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple), n=st.integers(1, 3), dtype=dtypes,
       affine=st.booleans(), layout=layouts)
def test_layer_norm(shape, n, dtype, affine, layout):
    x = _meta(shape, dtype, layout)  # ConvNeXt normalizes a permuted map: any layout
    normalized = list(shape[-min(n, len(shape)):])
    w = torch.empty(normalized, dtype=dtype, device="meta") if affine else None
    fast = _same(aten.native_layer_norm.default, (x, normalized, w, w, 1e-5))
    assert fast or layout != "contiguous"  # a plain input always takes the fast path


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple), keepdim=st.booleans(),
       data=st.data())
def test_mean_over_dims(shape, keepdim, data):
    dims = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=len(shape), unique_by=lambda d: d % len(shape)))
    assert _same(aten.mean.dim, (_meta(shape), dims, keepdim))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple), parts=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       data=st.data())
def test_cat(shape, parts, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    d = dim % len(shape)
    tensors = [_meta(shape[:d] + (p,) + shape[d + 1:]) for p in parts]
    assert _same(aten.cat.default, (tensors, dim))


@pytest.mark.parametrize("op", [aten._softmax.default,
                                pytest.param(getattr(getattr(aten, "_safe_softmax", None), "default", None),
                                             marks=pytest.mark.skipif(not hasattr(aten, "_safe_softmax"),
                                                                      reason="torch 2.5 added _safe_softmax"))])
def test_softmax(op):
    x = _meta((2, 3, 4))
    args = (x, -1, False) if op is aten._softmax.default else (x, -1)
    assert _same(op, args)


def test_invalid_shapes_fall_back_to_torch_or_raise_its_error():
    args = (_meta((50,)), _meta((2, 3380)), _meta((2880, 50)))
    with pytest.raises(fastmeta.MatmulMismatch) as ours:
        fastmeta.outputs(aten.addmm.default, args, {})
    assert (ours.value.left, ours.value.right) == ((2, 3380), (2880, 50))
    with pytest.raises(RuntimeError):  # torch rejects the same operands, in its own words
        aten.addmm.default(torch.zeros(50), torch.zeros(2, 3380), torch.zeros(2880, 50))
    assert fastmeta.outputs(aten.cat.default, ([_meta((2, 3)), _meta((3, 3))], 1), {}) is None
    assert fastmeta.outputs(aten.relu.default, (torch.empty(3),), {}) is None  # real values: not ours


def test_the_cli_never_imports_dynamo(in_repo):
    import subprocess
    import sys

    code = ("import sys; from shapecheck.cli import main; main(['examples/quiz_a.py:Net', '--input', '3x64x64']); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


@settings(max_examples=150, deadline=None)
@given(rank=st.integers(1, 3), n=st.integers(1, 4), groups=st.sampled_from([1, 2]), cout=st.sampled_from([2, 4]),
       cin=st.sampled_from([2, 4]), data=st.data(), bias=st.booleans())
def test_convolution(rank, n, groups, cout, cin, data, bias):
    sizes = data.draw(st.lists(st.integers(1, 12), min_size=rank, max_size=rank))
    kernel = data.draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank))
    stride = data.draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    padding = data.draw(st.lists(st.integers(0, 2), min_size=rank, max_size=rank))
    dilation = data.draw(st.lists(st.integers(1, 2), min_size=rank, max_size=rank))
    x = _meta((n, cin, *sizes))
    w = _meta((cout, cin // groups, *kernel))
    b = _meta((cout,)) if bias else None
    _same(aten.convolution.default, (x, w, b, stride, padding, dilation, False, [0] * rank, groups))


@settings(max_examples=150, deadline=None)
@given(rank=st.integers(1, 3), n=st.integers(1, 3), groups=st.sampled_from([1, 2]), cout=st.sampled_from([2, 4]),
       cin=st.sampled_from([2, 4]), data=st.data(), bias=st.booleans())
def test_transposed_convolution(rank, n, groups, cout, cin, data, bias):
    sizes = data.draw(st.lists(st.integers(1, 8), min_size=rank, max_size=rank))
    kernel = data.draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    stride = data.draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    padding = data.draw(st.lists(st.integers(0, 2), min_size=rank, max_size=rank))
    dilation = data.draw(st.lists(st.integers(1, 2), min_size=rank, max_size=rank))
    extra = [data.draw(st.integers(0, max(s, d))) for s, d in zip(stride, dilation)]  # the last one is invalid
    x = _meta((n, cin, *sizes))
    w = _meta((cin, cout // groups, *kernel))
    b = _meta((cout,)) if bias else None
    _same(aten.convolution.default, (x, w, b, stride, padding, dilation, True, extra, groups))


def test_a_transposed_convolution_fed_other_channels_is_an_error_on_meta_too():
    """torch's meta kernel accepts it; its CPU kernel, which a real run uses, does not."""
    args = (_meta((2, 8, 6, 6)), _meta((16, 8, 2, 2)), None, [2, 2], [0, 0], [1, 1], True, [0, 0], 1)
    with pytest.raises(RuntimeError):
        aten.convolution.default(torch.zeros(2, 8, 6, 6), torch.zeros(16, 8, 2, 2), *args[2:])
    with pytest.raises(fastmeta.ChannelMismatch):
        fastmeta.outputs(aten.convolution.default, args, {})


@settings(max_examples=150, deadline=None)
@given(h=st.integers(1, 20), w=st.integers(1, 20), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2),
       d=st.integers(1, 2), ceil=st.booleans())
def test_max_pool2d(h, w, k, s, p, d, ceil):
    _same(aten.max_pool2d_with_indices.default, (_meta((2, 3, h, w)), [k, k], [s, s], [p, p], [d, d], ceil))


def test_a_valid_conv_and_pool_take_the_fast_path():
    x = _meta((2, 3, 64, 64))
    assert _same(aten.convolution.default, (x, _meta((10, 3, 5, 5)), _meta((10,)), [1, 1], [0, 0], [1, 1], False, [0, 0], 1))
    assert _same(aten.max_pool2d_with_indices.default, (_meta((2, 10, 60, 60)), [2, 2], [2, 2], [0, 0], [1, 1], False))
