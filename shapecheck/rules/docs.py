"""Generate docs/rules.md from the registry: ``python -m shapecheck.rules.docs > docs/rules.md``."""
from __future__ import annotations

from shapecheck.rules.registry import RULES


def render() -> str:
    lines = ["# Rules", "",
             "Generated from `shapecheck/rules/registry.py` by `python -m shapecheck.rules.docs`;",
             "a test fails when this page and the registry differ.", "",
             "| code | name | severity | on by default |", "|---|---|---|---|"]
    lines += [f"| [{r.code}](#{r.code.lower()}) | {r.name} | {r.severity} | {'yes' if r.enabled else 'no'} |"
              for r in _ordered()]
    for rule in _ordered():
        lines += ["", f"## {rule.code}", "", f"`{rule.name}` ({rule.severity}): {rule.summary}.", "",
                  "### What it does", "", rule.what, "", "### Why is this bad?", "", rule.why, "",
                  "### Example", "", "```python", rule.example, "```", "",
                  "### Use instead", "", "```python", rule.use_instead, "```"]
    return "\n".join(lines) + "\n"


def _ordered() -> list:
    return sorted(RULES.values(), key=lambda rule: rule.code)


if __name__ == "__main__":
    print(render(), end="")
