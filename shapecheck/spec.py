"""Parse input specs such as ``3x64x64`` or ``16000:int64`` into shapes and dtypes."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, NoReturn, Union

import torch

from shapecheck.errors import UsageError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float": torch.float32, "float64": torch.float64,
    "double": torch.float64, "float16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "long": torch.int64,
    "int32": torch.int32, "int": torch.int32, "int16": torch.int16, "int8": torch.int8,
    "uint8": torch.uint8, "bool": torch.bool,
}

_DIMS = re.compile(r"^\d+([x,]\d+)*$")


Container = Literal["tensor", "list", "tuple", "dict"]
_OPEN = {"[": "list", "(": "tuple", "{": "dict"}
_CLOSE = {"list": "]", "tuple": ")", "dict": "}"}


@dataclass(frozen=True)
class InputSpec:
    """One argument of ``forward``: a tensor, or a list, tuple or dict of them.

    A tensor's ``shape`` is one sample's, and the batch is put at ``batch_dim`` (in front, or
    second for a sequence-first model's ``[T, B, ...]``), unless ``exact``: then it is the
    whole tensor's (an item of a list input, where the list is the batch, as detection models
    take their images, or an example tensor with no batch dimension to read). A named one
    (``mask=1x64x64``) is passed as that keyword argument; a dict's items are named by their
    keys. A container's ``shape`` and
    ``dtype`` are its first tensor's, which is what messages about "the input" describe.
    """

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    name: str | None = None
    exact: bool = False
    container: Container = "tensor"
    items: tuple[InputSpec, ...] = ()
    batch_dim: int = 0

    def __str__(self) -> str:
        text = self._value()
        return f"{self.name}={text}" if self.name else text

    def _value(self) -> str:
        if self.container == "dict":
            return "{" + ", ".join(f"{item.name}: {item._value()}" for item in self.items) + "}"
        if self.container != "tensor":
            inner = ", ".join(item._value() for item in self.items)
            return f"[{inner}]" if self.container == "list" else f"({inner}{',' if len(self.items) == 1 else ''})"
        dims = "x".join(str(d) for d in self.shape) or "scalar"
        return dims if self.dtype == torch.float32 else f"{dims}:{dtype_name(self.dtype)}"

    def batched(self, batch: int) -> tuple[int, ...]:
        """The whole tensor's shape at ``batch``. A per-sample scalar is ``[B]`` wherever the
        batch of the other inputs sits."""
        if self.exact:
            return self.shape
        at = min(self.batch_dim, len(self.shape))
        return (*self.shape[:at], batch, *self.shape[at:])

    def with_batch_dim(self, dim: int) -> InputSpec:
        """The same input with its batch at ``dim``, in every tensor that has a batch."""
        if self.container != "tensor":
            return replace(self, items=tuple(item.with_batch_dim(dim) for item in self.items))
        if not self.exact and dim > len(self.shape) and self.shape:
            raise UsageError(f"batch_dim {dim} is past the last dimension of input {self} "
                             f"({len(self.shape) + 1} dimensions with the batch)")
        return self if self.exact else replace(self, batch_dim=dim)

    @property
    def leaves(self) -> tuple[InputSpec, ...]:
        """Its tensors, depth first."""
        return (self,) if self.container == "tensor" else tuple(leaf for item in self.items for leaf in item.leaves)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_dtype(text: str) -> torch.dtype:
    try:
        return DTYPES[text.strip().lower()]
    except KeyError:
        raise UsageError(
            f"unknown dtype {text!r}: use one of {', '.join(sorted(DTYPES))}"
        ) from None


_STRUCTURE_HELP = ("a list input is [3x320x320, 3x480x640] (one tensor per sample, no batch added: "
                   "the detection convention); a dict input is {image: 3x224x224, mask: 1x224x224} "
                   "(batched tensors, as --input itself), and so is a tuple such as an LSTM's state (1x512, 1x512)")


def parse_input(text: str | InputSpec | tuple[int, ...], dtype: torch.dtype | None = None) -> InputSpec:
    """``3x64x64``, ``3,64,64``, ``16000:int64``, ``mask=1x64x64``, ``t=scalar:int64`` (one number per
    sample, a ``[B]`` tensor), a list ``[3x320x320, 3x480x640]`` or a dict
    ``{image: 3x224x224, mask: 1x224x224}``; a tuple of ints is taken as the shape, ``()`` as a scalar."""
    if isinstance(text, InputSpec):
        return text
    if isinstance(text, tuple | list):  # () is one scalar per sample: a timestep, a label
        return _checked(tuple(int(d) for d in text), dtype or torch.float32, str(text), scalar=True)
    name, equals, rest = str(text).strip().partition("=")
    if equals and name.strip()[:1] not in _OPEN:  # image=3x224x224: a keyword argument of forward
        if not name.strip().isidentifier():
            raise UsageError(f"invalid input spec {text!r}: a named input is NAME=SHAPE, e.g. mask=1x64x64")
        return replace(parse_input(rest, dtype), name=name.strip())
    stripped = str(text).strip()
    if stripped[:1] in _OPEN or stripped[-1:] in _CLOSE.values():
        return _Structure(stripped, dtype).parse()
    return _tensor(stripped, dtype, str(text))


def _tensor(text: str, dtype: torch.dtype | None, whole: str, exact: bool = False) -> InputSpec:
    dims, _, dtype_text = text.strip().lower().partition(":")
    dims = dims.replace(" ", "")
    if dims == SCALAR:  # one number per sample: the tensor is [B]
        chosen = parse_dtype(dtype_text) if dtype_text else (dtype or torch.float32)
        return InputSpec((), chosen, exact=exact)
    if not _DIMS.match(dims):
        raise UsageError(
            f"invalid input spec {whole!r}: give one sample's shape without the batch, "
            "e.g. 3x64x64 (images), 1x16000 (audio) or 128:int64 (token ids); " + _STRUCTURE_HELP
        )
    chosen = parse_dtype(dtype_text) if dtype_text else (dtype or torch.float32)
    return replace(_checked(tuple(int(d) for d in re.split("[x,]", dims)), chosen, whole), exact=exact)


class _Structure:
    """A recursive-descent reader of list and dict specs. Inside brackets, items are separated
    by commas, so a shape there is written with ``x`` only."""

    def __init__(self, text: str, dtype: torch.dtype | None) -> None:
        self.text, self.dtype, self.at = text, dtype, 0

    def parse(self) -> InputSpec:
        spec = self._value(exact=False, depth=0)
        if self._rest():
            self._fail(f"unexpected {self._rest()!r} after the closing bracket")
        if spec.container in ("list", "tuple") and re.fullmatch(r"[\[(][\d\s,]*[\])]", self.text):
            sizes = ", ".join(str(item.shape[0]) for item in spec.items)
            raise UsageError(f"input spec {self.text!r} reads as a {spec.container} of {len(spec.items)} 1-d tensors "
                             f"of sizes {sizes}; for one tensor write {'x'.join(sizes.split(', '))}, for a "
                             f"{spec.container} of 1-d tensors give each its dtype, e.g. "
                             f"{self.text[0]}{spec.items[0].shape[0]}:int64, ...{self.text[-1]}")
        return spec

    def _value(self, exact: bool, depth: int) -> InputSpec:
        opener = self._rest()[:1]
        if opener not in _OPEN:
            return self._leaf(exact)
        if depth >= _MAX_DEPTH:
            self._fail(f"brackets nest deeper than {_MAX_DEPTH}")
        container: Container = _OPEN[opener]  # type: ignore[assignment]
        self.at = self.text.index(opener, self.at) + 1
        items = []
        while not self._take(_CLOSE[container]):
            if items and not self._take(","):
                self._fail(f"expected ',' or '{_CLOSE[container]}'")
            if self._take(_CLOSE[container]):  # a trailing comma
                break
            key = self._key() if container == "dict" else None
            # A list holds one tensor per sample (no batch): the detection convention. A dict's
            # or a tuple's items are batched, as an LSTM's (h, c) state is.
            items.append(replace(self._value(exact=container == "list", depth=depth + 1), name=key))
        if not items:
            self._fail("it is empty")
        return InputSpec(items[0].leaves[0].shape, items[0].leaves[0].dtype, container=container, items=tuple(items))

    def _leaf(self, exact: bool) -> InputSpec:
        match = re.match(r"\s*((?:[0-9x]+|scalar)(?::\s*[a-z0-9]+)?)", self.text[self.at:], re.IGNORECASE)
        if match is None:
            self._fail("expected a shape such as 3x64x64")
        self.at += match.end()
        return _tensor(match.group(1), self.dtype, self.text, exact)

    def _key(self) -> str:
        match = re.match(r"\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?\s*:", self.text[self.at:])
        if match is None:
            self._fail("a dict item is KEY: SHAPE")
        self.at += match.end()
        return match.group(1)

    def _take(self, token: str) -> bool:
        if self._rest().startswith(token):
            self.at = self.text.index(token, self.at) + 1
            return True
        return False

    def _rest(self) -> str:
        return self.text[self.at:].strip()

    def _fail(self, why: str) -> NoReturn:
        shown = self.text if len(self.text) <= 80 else f"{self.text[:60]}...{self.text[-12:]}"
        raise UsageError(f"invalid input spec {shown!r}: {why}; {_STRUCTURE_HELP}")


def _checked(shape: tuple[int, ...], dtype: torch.dtype, text: str, scalar: bool = False) -> InputSpec:
    if (not shape and not scalar) or any(d <= 0 for d in shape):
        raise UsageError(f"invalid input spec {text!r}: every size must be a positive integer")
    if math.prod(shape) > MAX_ELEMENTS:
        raise UsageError(f"invalid input spec {text!r}: {math.prod(shape):,} elements per sample; a tensor here "
                         f"holds at most 2**48 ({MAX_ELEMENTS:,}), far beyond any real input")
    return InputSpec(shape, dtype)


SCALAR = "scalar"  # the spelling of a per-sample scalar input: --input t=scalar:int64
MAX_ELEMENTS = 2**48  # per sample: times any batch, still inside torch's int64 sizes
_MAX_DEPTH = 16  # brackets in one spec: a real model's inputs nest two or three deep


Example = Union[str, InputSpec, tuple, list, Mapping, torch.Tensor]


@dataclass(frozen=True)
class Inputs:
    """``forward``'s arguments as specs, and what real example tensors said of the batch."""

    specs: tuple[InputSpec, ...]
    batch: int | None = None  # the example tensors' own batch, where they have one
    note: str | None = None  # how the batch was read, where the tensors left a choice


def read_inputs(texts: Example, dtype: torch.dtype | None = None, batch_dim: int | None = None) -> Inputs:
    """``forward``'s arguments, as torchinfo's ``input_data`` takes them: one spec or tensor; a
    list or tuple of them, one per positional argument; a dict of them, passed as keyword
    arguments. An argument may itself be a list, tuple or dict of tensors (or of specs): only
    their shapes and dtypes are kept.

    Real example tensors are traced at exactly their shapes. Their batch is read from the
    tensors at the top level and inside tuples and dicts (an LSTM's ``(h, c)``; a list is one
    tensor per sample, as detection models take images): dimension ``batch_dim`` where it is
    given; else the first dimension they all share (0, or 1 for sequence-first tensors such as
    ``[T, B]`` ids and an ``[L, B, H]`` hidden state); else they have none, and are traced as
    they are.
    """
    values = _top_values(texts)
    tensors = [(str(key), t) for key, value in values for t in _batched_tensors(value) if t.dim() > 0]
    dim, batch, note = _batch_axis(tensors, batch_dim)
    specs = tuple(replace(_argument(v, dtype, dim), name=str(key)) if isinstance(texts, Mapping)
                  else _argument(v, dtype, dim) for key, v in values)
    if batch_dim is not None:
        specs = tuple(spec.with_batch_dim(batch_dim) for spec in specs)
    return Inputs(specs, batch, note)


def parse_inputs(texts: Example, dtype: torch.dtype | None = None) -> tuple[InputSpec, ...]:
    return read_inputs(texts, dtype).specs


def batch_dim_of(specs: tuple[InputSpec, ...]) -> int | None:
    """Where the inputs keep the batch: the first batched tensor's dimension; None if none has one."""
    return next((leaf.batch_dim for spec in specs for leaf in spec.leaves if not leaf.exact), None)


def _top_values(texts: Example) -> list[tuple[Any, Any]]:
    if isinstance(texts, Mapping):
        return list(texts.items())
    if isinstance(texts, list | tuple) and texts and not all(isinstance(d, int) for d in texts):
        return list(enumerate(texts))
    return [(0, texts)]


def _batched_tensors(value: Any) -> list[torch.Tensor]:
    """The example tensors that carry the batch: all but those inside lists."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _batched_tensors(v)]
    return [t for v in value for t in _batched_tensors(v)] if isinstance(value, tuple) else []


def _batch_axis(tensors: list[tuple[str, torch.Tensor]], given: int | None) -> tuple[int | None, int | None, str | None]:
    """Where the example tensors keep the batch, its size, and a note where that was a guess."""
    if not tensors:
        return given, None, None
    if given is not None:
        sizes = {t.shape[given] for _, t in tensors if t.dim() > given}
        if len(sizes) > 1:
            raise UsageError(f"batch_dim={given}, but the example tensors have sizes "
                             f"{', '.join(map(str, sorted(sizes)))} there: {_listed(tensors)}; leave batch_dim out "
                             "to trace them at exactly their shapes")
        return given, (sizes.pop() if sizes else None), None
    for dim in (0, 1):
        sizes = {t.shape[dim] if t.dim() > dim else None for _, t in tensors}
        if len(sizes) == 1 and None not in sizes:
            size = sizes.pop()
            note = None if dim == 0 else (
                f"the batch was read as dimension 1 of the example tensors ({_listed(tensors)}), the first "
                f"dimension they share; pass batch_dim= to say otherwise")
            return dim, size, note
    return None, None, (f"the example tensors share no batch dimension ({_listed(tensors)}): they were traced "
                        "at exactly their shapes, and no second trace at another batch checked the batch; "
                        "pass batch_dim= to name it")


def _listed(tensors: list[tuple[str, torch.Tensor]]) -> str:
    named = len(tensors) > 1 or not tensors[0][0].isdigit()
    return ", ".join(f"{key + ' ' if named and not key.isdigit() else ''}{list(t.shape)}" for key, t in tensors)


def _argument(value: Any, dtype: torch.dtype | None, dim: int | None, top: bool = True,
              in_list: bool = False) -> InputSpec:
    """One argument. An example tensor drops its batch dimension ``dim`` (None: it has none, and
    is exact); one inside a list is exact, as a detector's list of images is. A spec inside a
    container is one tensor's whole shape."""
    if isinstance(value, torch.Tensor):
        if not in_list and dim is not None and value.dim() > dim:
            return InputSpec(tuple(value.shape[:dim] + value.shape[dim + 1:]), value.dtype, batch_dim=dim)
        return InputSpec(tuple(value.shape), value.dtype, exact=True)
    if isinstance(value, Mapping):
        items = tuple(replace(_argument(v, dtype, dim, False, in_list), name=str(k)) for k, v in value.items())
        return _container("dict", items, value)
    if isinstance(value, list | tuple) and value and not all(isinstance(d, int) for d in value):
        listed = in_list or isinstance(value, list)
        items = tuple(_argument(v, dtype, dim, False, listed) for v in value)
        return _container("list" if isinstance(value, list) else "tuple", items, value)
    spec = parse_input(value, dtype)
    return spec if top or spec.container != "tensor" else replace(spec, exact=True)


def _container(kind: Container, items: tuple[InputSpec, ...], value: Any) -> InputSpec:
    if not items or not items[0].leaves:
        raise ValueError(f"an example {kind} must hold at least one tensor, not {value!r}")
    first = items[0].leaves[0]
    return InputSpec(first.shape, first.dtype, container=kind, items=items)


_SCALES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BYTES = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_AMOUNT = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_count(text: str | int, what: str = "count") -> int:
    """``25M``, ``1.5G``, ``250_000`` or an int: parameter and MAC budgets."""
    if isinstance(text, int):
        return text
    match = _AMOUNT.match(str(text))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _SCALES:
        raise UsageError(f"invalid {what} {text!r}: write a number with an optional K, M, G or T, e.g. 25M")
    return int(float(match.group(1).replace("_", "").replace(",", "")) * _SCALES[unit])


def parse_bytes(text: str | int, what: str = "size") -> int:
    """``512MB``, ``1.5GiB`` or a number of bytes."""
    if isinstance(text, int):
        return text
    match = _AMOUNT.match(str(text))
    unit = (match.group(2).upper() or "B") if match else ""
    if match is None or unit not in _BYTES:
        raise UsageError(f"invalid {what} {text!r}: write bytes with a unit, e.g. 512MB or 1.5GiB")
    return int(float(match.group(1).replace("_", "").replace(",", "")) * _BYTES[unit])
