"""The pytest plugin, run the way users run it: real inner pytest sessions through pytester.

The inner sessions run in subprocesses: pytester's in-process mode restores sys.modules
afterwards, and torch cannot be imported twice into one process.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import shapecheck
from shapecheck import snapshot
from shapecheck.sizes import Solver
from shapecheck.spec import parse_input

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def models(pytester):
    for name in ("quiz_a.py", "quiz_c.py"):
        shutil.copy(EXAMPLES / name, pytester.path / name)
    return pytester


def test_assert_shapes_fails_with_the_diagnostics_and_the_table(models):
    models.makepyfile(test_api="""
        import shapecheck, quiz_a, quiz_c

        def test_good():
            report = shapecheck.assert_shapes(quiz_a.Net(), input="3x64x64", output=(5,))
            assert report.totals.params == 175085

        def test_broken():
            shapecheck.assert_shapes(quiz_c.Net(), input="3x64x64", output=(5,))

        def test_budget():
            shapecheck.assert_shapes(quiz_a.Net(), input="3x64x64", max_params=100_000, max_macs="1M")
    """)
    result = models.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*shapecheck: 2 error(s) in Net for input 3x64x64, batch 2",
        "*quiz_c.py:11:9: SHP001 fc1: Linear expects in_features=2880 (20 * 12 * 12) but receives 3380*",
        "*fc1 (Linear)  !*[2, 3380]*",
        "*SHP201 175,085 parameters exceed --max-params 100,000*",
        "*SHP202 6.25M MACs per sample exceed --max-macs 1.00M*",
    ])


def test_marker_checks_the_model_fixture_before_the_test_runs(models):
    models.makepyfile(test_marker="""
        import pytest, quiz_a, quiz_c

        @pytest.fixture
        def model():
            return quiz_c.Net()

        @pytest.fixture
        def good():
            return quiz_a.Net()

        @pytest.mark.shapecheck(input="3x64x64", output=5)
        def test_broken_never_runs(model):
            raise RuntimeError("the body must not run")

        @pytest.mark.shapecheck("3x64x64", output=5, fixture="good")
        def test_good_runs(good):
            assert good.fc1.in_features == 3380

        @pytest.mark.shapecheck(input="3x64x64")
        def test_without_fixture():
            pass
    """)
    result = models.runpytest_subprocess("-p", "no:cacheprovider", "--shapecheck-no-table")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*SHP001 fc1*", "*needs the test to take the 'model' fixture*"])
    assert "the body must not run" not in result.stdout.str()
    assert "fc1 (Linear)  !" not in result.stdout.str()


def test_snapshot_is_written_compared_and_reports_drift_readably(models):
    models.makepyfile(test_snap="""
        import quiz_a

        def test_shapes(shape_snapshot):
            shape_snapshot.assert_match(quiz_a.Net(), "3x64x64")
    """)
    missing = models.runpytest_subprocess("-p", "no:cacheprovider")
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*no shape snapshot*run pytest --shapecheck-update to write it*"])
    models.runpytest_subprocess("-p", "no:cacheprovider", "--shapecheck-update").assert_outcomes(passed=1)
    stored = models.path / "__shapecheck_snapshots__" / "test_snap" / "test_shapes.json"
    assert json.loads(stored.read_text())["totals"]["params"] == 175085
    models.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)

    quiz = models.path / "quiz_a.py"  # the model changes: fc1 now reads 20x12x12 from a 60x60 input
    quiz.write_text(quiz.read_text().replace("20 * 13 * 13", "20 * 12 * 12"))
    models.makepyfile(test_snap="""
        import quiz_a

        def test_shapes(shape_snapshot):
            shape_snapshot.assert_match(quiz_a.Net(), "3x60x60", name="test_shapes")
    """)
    drifted = models.runpytest_subprocess("-p", "no:cacheprovider")
    drifted.assert_outcomes(failed=1)
    drifted.stdout.fnmatch_lines([
        "*shape snapshot test_shapes.json drifted (Net, input 3x60x60):",
        "*input 3x64x64 -> 3x60x60",
        "*fc1 in_features 3380 -> 2880, params -25,000",
        "*total params 175,085 -> 150,085 (-25,000)",
        "*run pytest --shapecheck-update to accept the new shapes",
    ])


def test_report_comparison_is_explained_layer_by_layer(models):
    models.makepyfile(test_cmp="""
        import shapecheck, quiz_a, quiz_c

        def test_same():
            assert shapecheck.analyze(quiz_c.Net(), "3x64x64") == shapecheck.analyze(quiz_a.Net(), "3x64x64")
    """)
    result = models.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*shapecheck reports differ:*", "*fc1 in_features 3380 -> 2880, params -25,000*"])


def test_valid_inputs_strategy_draws_only_accepted_shapes(models):
    models.makepyfile(test_prop="""
        import torch
        from hypothesis import given, settings
        from shapecheck.strategies import valid_inputs
        import quiz_a

        MODEL = quiz_a.Net().eval()

        @settings(max_examples=15, deadline=None)
        @given(shape=valid_inputs(MODEL, "3xHxW", low=40, high=90, batch=3))
        def test_runs(shape):
            assert MODEL(torch.randn(*shape)).shape == (shape[0], 5)
    """)
    models.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_snapshot_drift_lines_are_the_documented_ones():
    import sys
    sys.path.insert(0, str(EXAMPLES))
    try:
        import quiz_a
        import quiz_c
    finally:
        sys.path.remove(str(EXAMPLES))
    old = snapshot.data(shapecheck.analyze(quiz_c.Net(), "3x60x60"))
    new = snapshot.data(shapecheck.analyze(quiz_a.Net(), "3x64x64"))
    lines = snapshot.drift(old, new)
    assert "fc1 in_features 2880 -> 3380, params +25,000" in lines
    assert lines[0] == "input 3x60x60 -> 3x64x64" and not any(line.startswith("Net ") for line in lines)
    assert Solver(quiz_a.Net(), [parse_input("3x64x64")]).sweep(60, 70).accepted == (64, 65, 66, 67)


def test_assert_shapes_honours_no_table_and_every_check_needs_its_input(models):
    models.makepyfile(test_direct="""
        import pytest
        import quiz_c
        import shapecheck

        def test_assert_shapes_direct():
            shapecheck.assert_shapes(quiz_c.Net(), input="3x64x64")

        @pytest.mark.shapecheck(output=5)
        def test_marker_without_input(model):
            pass

        @pytest.fixture
        def model():
            return quiz_c.Net()

        def test_snapshot_without_input(shape_snapshot):
            shape_snapshot.assert_match(quiz_c.Net())
    """)
    result = models.runpytest_subprocess("-p", "no:cacheprovider", "--shapecheck-no-table")
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    assert "SHP001 fc1" in out and "fc1 (Linear)  !" not in out  # diagnostics, no table
    result.stdout.fnmatch_lines(["*@pytest.mark.shapecheck needs the input shape*",
                                 "*assert_match(model, input) needs the input shape*"])


def test_assert_shapes_requires_an_input():
    import inspect

    import shapecheck

    assert inspect.signature(shapecheck.assert_shapes).parameters["input"].default is inspect.Parameter.empty
