"""Docs that are generated or quoted must stay in step with the code."""
from __future__ import annotations

import json
import re

from shapecheck.rules import RULES
from shapecheck.rules.docs import render
from tests.conftest import ROOT


def test_rules_doc_is_generated_from_the_registry():
    assert (ROOT / "docs/rules.md").read_text() == render(), "run: python -m shapecheck.rules.docs > docs/rules.md"


def test_every_rule_has_ruff_style_docs():
    for rule in RULES.values():
        assert re.fullmatch(r"SHP\d{3}", rule.code)
        assert all((rule.what, rule.why, rule.example, rule.use_instead)), rule.code


def test_json_schema_doc_lists_every_field_the_renderer_writes(in_repo, capsys):
    from shapecheck.cli import main

    main(["examples/quiz_c.py:Net", "-i", "3x64x64", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    doc = (ROOT / "docs/json-schema.md").read_text()
    keys = set(data) | set(data["totals"]) | set(data["layers"][0]) | set(data["findings"][0])
    missing = [k for k in sorted(keys) if f"`{k}`" not in doc]
    assert missing == []
