"""README and docs stay true: the headline figures are exactly those in benchmarks/results/*.json,
the two fresh-machine commands are the ones CI runs, and every page the README links exists."""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import headline  # noqa: E402


def test_readme_headline_figures_are_read_from_the_results_json():
    readme = (ROOT / "README.md").read_text()
    assert headline.readme_block(readme) == headline.render(), \
        "README headline figures differ from benchmarks/results: run python benchmarks/headline.py --write"


def test_readme_holds_exactly_two_fresh_machine_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Two commands on a fresh machine"):]
    block = block[block.index("```bash") + 7:]
    commands = [ln for ln in block[:block.index("```")].splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(commands) == 2 and commands[0].endswith("python examples/quickstart.py")
    test_cmd = commands[1].split("&&")[-1].strip()
    assert test_cmd == 'python -m pytest -q -m "not slow"' and test_cmd in (ROOT / ".ci" / "run").read_text()


def test_every_linked_page_exists_and_links_back():
    readme = (ROOT / "README.md").read_text()
    pages = sorted(set(re.findall(r"\]\((docs/[\w.]+\.md)\)", readme)))
    assert len(pages) == 7
    for page in pages:
        text = (ROOT / page).read_text()
        assert text.startswith("# ") and "../README.md" in text, page
    assert sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")) == pages  # no orphan page
