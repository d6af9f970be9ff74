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


def test_pasted_runs_in_the_docs_are_current(in_repo):
    import importlib.util

    spec = importlib.util.spec_from_file_location("write_docs", ROOT / "benchmarks/write_docs.py")
    write_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(write_docs)
    for page in write_docs.PAGES:
        text = page.read_text()
        assert write_docs.refresh(text) == text, f"run: python benchmarks/write_docs.py ({page.name})"


def test_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in readme]
    assert missing == []
