"""The operator documentation holds together: every alert's runbook annotation lands on
its section of docs/operations.md, each section says when it fires, what it means and
what to do, and the links between the README and the architecture, configuration and
operations pages reach files and headings that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = "docs/operations.md"
RULES = ROOT / "deploy" / "prometheus"
# The pages of the operator documentation whose links are checked (other pages link to
# the spec outside this repository).
LINKED = ["README.md", "docs/architecture.md", "docs/operations.md", "docs/configuration.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def load(name: str) -> Any:
    return yaml.safe_load((RULES / name).read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load("alerts.yml")["groups"] for r in g["rules"] if "alert" in r]


def test_every_runbook_annotation_lands_on_its_alerts_section() -> None:
    rules = alert_rules()
    assert len(rules) >= 6
    headings = anchors(ROOT / RUNBOOK)
    for rule in rules:
        runbook = rule["annotations"]["runbook"]
        assert runbook == f"{RUNBOOK}#{rule['alert'].lower()}", rule["alert"]
        assert runbook.split("#", 1)[1] in headings, f"no section {runbook}"
    for case in load("alerts_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            for alert in check.get("exp_alerts", []):
                runbook = alert["exp_annotations"]["runbook"]
                assert runbook == f"{RUNBOOK}#{check['alertname'].lower()}"


def test_each_alert_section_says_fires_means_do() -> None:
    text = (ROOT / RUNBOOK).read_text(encoding="utf-8")
    for rule in alert_rules():
        match = re.search(rf"^### {rule['alert']}\n(.*?)(?=^#{{2,3}} |\Z)", text, re.M | re.S)
        assert match, rule["alert"]
        for part in ("- **Fires**", "- **Means**", "- **Do**"):
            assert part in match.group(1), (rule["alert"], part)


@pytest.mark.parametrize("page", LINKED)
def test_relative_links_reach_files_and_headings(page: str) -> None:
    source = ROOT / page
    text = re.sub(r"```.*?```", "", source.read_text(encoding="utf-8"), flags=re.DOTALL)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("../shared/"):
            continue
        path, _, anchor = target.partition("#")
        resolved = (source.parent / path).resolve() if path else source
        assert resolved.exists(), f"{page}: {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page}: {target}"


def test_the_readme_links_the_operator_documentation() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in ("architecture", "configuration", "operations", "mock-portal"):
        assert f"(docs/{doc}.md)" in readme, doc
    for command in ("keys create", "keys list", "keys revoke"):
        assert f"`dossier-sync {command}" in readme, command


def test_the_slug_is_githubs() -> None:
    assert slug("Dead letters: redriving") == "dead-letters-redriving"
    assert slug("Several workers on one PostgreSQL") == "several-workers-on-one-postgresql"
    assert slug("`[[sources]]`") == "sources"
