"""CI-native output formats, budgets and checkpoint reconciliation, through the CLI."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from shapecheck.cli import main
from shapecheck.render.github import annotation
from shapecheck.report import Finding, Location
from shapecheck.rules import RULES


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_github_annotations(in_repo, capsys):
    code, out, _ = run(capsys, "examples/quiz_c.py:Net", "-i", "3x64x64", "--format", "github")
    assert code == 1
    assert out.splitlines()[0] == (
        "::error file=examples/quiz_c.py,line=11,col=9,title=SHP001 linear-in-features-mismatch::fc1: Linear "
        "expects in_features=2880 (20 * 12 * 12) but receives 3380 = 20x13x13 from pool [2, 20, 13, 13] for "
        "input 3x64x64; 2880 fits 3x60x60 to 3x63x63 inputs")
    assert len(out.splitlines()) == 2


def test_github_escapes_workflow_command_characters():
    finding = Finding("SHP105", "info", "100% of it\nnext", Location("a,b:c.py", 3, 1))
    assert annotation(finding) == ("::notice file=a%2Cb%3Ac.py,line=3,col=1,title=SHP105 dominant-linear"
                                   "::100%25 of it%0Anext")


SARIF_LEVELS = {"none", "note", "warning", "error"}


def test_sarif_is_structurally_valid_2_1_0(in_repo, capsys):
    code, out, _ = run(capsys, "examples/quiz_c.py:Net", "-i", "3x64x64", "--format", "sarif")
    sarif = json.loads(out)
    assert code == 1 and sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    (run_,) = sarif["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "shapecheck" and isinstance(driver["version"], str)
    ids = [rule["id"] for rule in driver["rules"]]
    assert sorted(ids) == sorted(RULES) and len(set(ids)) == len(ids)
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["defaultConfiguration"]["level"] in SARIF_LEVELS
    assert [r["ruleId"] for r in run_["results"]] == ["SHP001", "SHP003"]
    for result in run_["results"]:
        assert result["level"] in SARIF_LEVELS and result["message"]["text"]
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "examples/quiz_c.py"
        assert physical["region"]["startLine"] >= 1 and physical["region"]["startColumn"] >= 1
        (fix,) = result["fixes"]
        (change,) = fix["artifactChanges"]
        (replacement,) = change["replacements"]
        assert replacement["deletedRegion"]["startLine"] == physical["region"]["startLine"]
    assert run_["results"][0]["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"] == {
        "text": "20 * 13 * 13"}


def test_markdown_table_for_pull_requests(in_repo, capsys):
    code, out, _ = run(capsys, "examples/quiz_c.py:Net", "-i", "3x64x64", "--format", "markdown")
    lines = out.splitlines()
    assert lines[0] == "### shapecheck: `Net` (`examples/quiz_c.py`), input 3x64x64, batch 2"
    assert lines[2] == "| layer | type | input | output | params | MACs |"
    assert "| &nbsp;&nbsp;`fc1` **(fails)** | Linear | [2, 3380] | [2, 50] | 144,050 | -- |" in lines
    assert lines[-2].startswith("- **error** `examples/quiz_c.py:11:9: SHP001 fc1")


def test_budgets_are_findings(in_repo, capsys):
    code, out, _ = run(capsys, "examples/cat_dog_cnn.py:CatDogCNN", "-i", "3x150x150", "--max-params", "1M",
                       "--max-macs", "10M", "--max-activation-memory", "1MiB", "--select", "SHP2")
    assert code == 1
    assert out.splitlines()[-3:] == [
        "examples/cat_dog_cnn.py:4:1: SHP201 5,612,769 parameters exceed --max-params 1,000,000; "
        "the largest layer is fc1 with 5,607,552",
        "examples/cat_dog_cnn.py:4:1: SHP202 41.25M MACs per sample exceed --max-macs 10.00M for input 3x150x150; "
        "the heaviest layer is conv2 with 25.92M",
        "examples/cat_dog_cnn.py:4:1: SHP203 activation memory 9.60 MiB for batch 2 exceeds "
        "--max-activation-memory 1.00 MiB for input 3x150x150",
    ]


def test_a_malformed_budget_is_a_usage_error(in_repo, capsys):
    code, _, err = run(capsys, "examples/quiz_a.py:Net", "-i", "3x64x64", "--max-params", "lots")
    assert code == 2 and err.count("\n") == 1 and "invalid max_params 'lots'" in err


@pytest.fixture
def quiz(in_repo):
    sys.path.insert(0, "examples")
    try:
        import quiz_a
        import quiz_c
    finally:
        sys.path.remove("examples")
    return quiz_a, quiz_c


def test_checkpoint_trained_on_another_input_size_says_which(quiz, tmp_path, capsys):
    _, quiz_c = quiz
    torch.save(quiz_c.Net().state_dict(), tmp_path / "weights.pt")
    code, out, _ = run(capsys, "examples/quiz_a.py:Net", "-i", "3x64x64", "--checkpoint", str(tmp_path / "weights.pt"),
                       "--select", "SHP3")
    assert code == 1
    assert out.splitlines()[-1] == (
        "examples/quiz_a.py:11:9: SHP301 checkpoint fc1.weight is [50, 2880] but the model's is [50, 3380]: "
        "it was trained on 60-63 px inputs (3x60x60), you are feeding 3x64x64")


def test_checkpoint_missing_unexpected_nested_and_data_parallel_keys(quiz, tmp_path, capsys):
    quiz_a, _ = quiz
    state = {f"module.{k}": v for k, v in quiz_a.Net().state_dict().items() if k != "fc2.bias"}
    state["module.head.weight"] = torch.zeros(2)
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "ckpt.pt")
    code, out, _ = run(capsys, "examples/quiz_a.py:Net", "-i", "3x64x64", "--checkpoint", str(tmp_path / "ckpt.pt"),
                       "--select", "SHP3")
    assert code == 1
    assert out.splitlines()[-2:] == [
        "examples/quiz_a.py:5:1: SHP302 the checkpoint lacks 1 of the model's 8 tensors: fc2.bias; "
        "load_state_dict(strict=True) will fail",
        "examples/quiz_a.py:5:1: SHP303 the checkpoint has 1 tensor the model does not: head.weight",
    ]


class Payload:
    pass


def test_checkpoint_is_loaded_with_weights_only(quiz, tmp_path, capsys):
    torch.save({"fc1.weight": torch.zeros(2), "trap": Payload()}, tmp_path / "pickled.pt")
    code, _, err = run(capsys, "examples/quiz_a.py:Net", "-i", "3x64x64", "--checkpoint", str(tmp_path / "pickled.pt"))
    assert code == 2 and err.count("\n") == 1
    assert "cannot load checkpoint" in err and "weights_only=True" in err
    code, _, err = run(capsys, "examples/quiz_a.py:Net", "-i", "3x64x64", "--checkpoint", "missing.pt")
    assert code == 2 and "no such checkpoint: missing.pt" in err


SCHEMAS = __import__("pathlib").Path(__file__).parent / "schemas"


@pytest.mark.parametrize("argv", [
    ["examples/quiz_c.py:Net", "-i", "3x64x64"],  # errors with fixes and hints
    ["examples/quiz_a.py:Net", "-i", "3x64x64"],  # warnings and info only
    ["examples/missing_import.py:Net", "-i", "3x32x32"],  # a forward error
    ["examples/quiz_a.py:Net", "-i", "3x64"],  # a trace that stops, with a note
])
def test_json_and_sarif_validate_against_their_schemas(in_repo, capsys, argv):
    import jsonschema

    from shapecheck.render.json import SCHEMA_FILE

    _, out, _ = run(capsys, *argv, "--format", "json")
    report = json.loads(out)
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(report)
    assert all(key in finding for finding in report["findings"] for key in ("hint", "fix", "called_at"))
    _, out, _ = run(capsys, *argv, "--format", "sarif")
    sarif_schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(sarif_schema).validate(json.loads(out))


def test_json_layers_carry_their_configuration(in_repo, capsys):
    _, out, _ = run(capsys, "examples/quiz_c.py:Net", "-i", "3x64x64", "--format", "json")
    layers = {layer["name"]: layer for layer in json.loads(out)["layers"]}
    assert layers["conv1"]["config"]["kernel_size"] == [5, 5] and layers["fc1"]["config"]["in_features"] == 2880
    assert layers["relu"]["config"] == {}
    assert not any(key.startswith(("src:", "arg:")) for layer in layers.values() for key in layer["config"])
