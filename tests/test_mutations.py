"""Bug injection, sampled: one number mutated in a valid model, scored against real CPU runs.

benchmarks/mutants.py holds the harness (models, mutations, ground truth) and its scores:
(a) the bug is detected, (b) the first failing layer and its line are the real ones,
(c) every module row after it equals the real forward of the repaired model. The full run
is benchmarks/mutations.py, whose table is docs/mutations.md.
"""
from __future__ import annotations

import importlib.util
import random
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("mutants", ROOT / "benchmarks" / "mutants.py")
mutants = importlib.util.module_from_spec(_spec)
sys.modules["mutants"] = mutants
_spec.loader.exec_module(mutants)


def _check(score) -> None:
    assert score.status != "invalid" or "building" in score.why
    if score.status != "invalid":  # a caught bug with right rows, or a mutant that still runs and no error
        assert score.perfect, score


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False), choice=st.integers(0, 10_000))
def test_a_mutated_generated_model_is_caught_at_the_right_layer_with_right_rows(rng, choice):
    source = mutants.generate(rng)
    options = mutants.mutations(source.text)
    _check(mutants.score(source, options[choice % len(options)]))


def _examples() -> list:
    pairs = [(s, m) for s in mutants.examples(ROOT) for m in mutants.mutations(s.text, s.lines)]
    return random.Random(0).sample(pairs, 24)  # the full list is the benchmark's


@pytest.mark.parametrize("pair", _examples(), ids=lambda p: f"{p[0].name}:{p[1]}")
def test_a_mutated_example_or_zoo_model(pair):
    _check(mutants.score(*pair))


def test_mutations_change_one_number_of_a_layer_or_a_view():
    source = mutants.Source("quiz", (ROOT / "examples" / "quiz_a.py").read_text(), (3, 64, 64))
    found = mutants.mutations(source.text)
    assert {m.where for m in found} == {"layer", "view"}
    for mutation in found:
        changed = [(a, b) for a, b in zip(source.text.splitlines(), mutation.apply(source.text).splitlines()) if a != b]
        assert len(changed) == 1 and str(mutation.new) in changed[0][1]


def test_a_channel_mutation_is_repaired_to_what_the_layer_received():
    """The issue's own case: Conv2d(3, 64) -> Conv2d(32, 32), input 3x32x32."""
    source = mutants._render("case", ["self.c1 = nn.Conv2d(3, 64, 3, padding=1)",
                                      "self.c2 = nn.Conv2d(64, 32, 3, padding=1)",
                                      "self.fc = nn.Linear(32 * 32 * 32, 10)"],
                             ["x = self.c2(self.c1(x))", "x = self.fc(x.flatten(1))"], (3, 32, 32))
    halved = next(m for m in mutants.mutations(source.text) if m.old == 64 and m.new == 32 and "c2" in
                  source.text.splitlines()[m.line - 1])
    score = mutants.score(source, halved)
    assert score.status == "scored" and score.perfect and score.rows == 2, score  # c2 and fc
