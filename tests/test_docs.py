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


# A figure quoted in docs/*.md cites its source right after it: `**6.1×**<!-- fig network.json speedup_end_to_end .1f -->`
# (file under benchmarks/results/, a dotted key path, a format spec; a spec starting with % formats 100·value).
FIGURE = re.compile(r"(?P<before>[^\n]{0,40}?)<!-- fig (?P<file>[\w.]+\.json) (?P<key>[\w.\-]+) (?P<fmt>%?[\w.]+) -->")


def cited_figures(text: str) -> list[tuple[str, str, str, str]]:
    """(text before the citation, results file, key path, format) of each cited figure in `text`."""
    return [(m["before"], m["file"], m["key"], m["fmt"]) for m in FIGURE.finditer(text)]


def render_figure(file: str, key: str, fmt: str) -> str:
    import json

    value = json.loads((ROOT / "benchmarks" / "results" / file).read_text())
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return format(100 * value, fmt[1:]) if fmt.startswith("%") else format(value, fmt)


def quotes(before: str, figure: str) -> bool:
    """True when the text before a citation ends with `figure` (bold, a unit and spaces allowed)."""
    return re.search(rf"(^|[^\d.]){re.escape(figure)}\s*(%|×|Hz|mV|nA|ms|µs|s|s/sim|min)?$", before.rstrip("*_ ")) is not None


def test_cited_figures_in_docs_equal_the_results_json():
    pages = sorted((ROOT / "docs").glob("*.md"))
    counts = {}
    for page in pages:
        cites = cited_figures(page.read_text())
        counts[page.name] = len(cites)
        for before, file, key, fmt in cites:
            want = render_figure(file, key, fmt)
            assert quotes(before, want), f"{page.name}: {before!r} quotes {file}:{key}, which is {want}: update the page"
    measured_pages = ("benchmarks.md", "network_mode.md", "surrogate.md")
    assert all(counts[p] >= 3 for p in measured_pages), counts


def test_a_wrong_cited_figure_is_caught():
    import json

    measured = json.loads((ROOT / "benchmarks" / "results" / "network.json").read_text())["rate_Hz_detailed_mean"]
    wrong = f"{measured + 1.0:.1f}"
    before, file, key, fmt = cited_figures(f"rate **{wrong} Hz**<!-- fig network.json rate_Hz_detailed_mean .1f -->")[0]
    right = render_figure(file, key, fmt)
    assert right == f"{measured:.1f}" and not quotes(before, right) and quotes(f"rate **{right} Hz", right)
    assert not quotes(f"rate 1{right}", right)


def test_readme_package_table_names_every_module_of_every_subpackage():
    text = (ROOT / "README.md").read_text()
    missing = []
    for sub in sorted(p for p in (ROOT / "noble_neuron").iterdir() if (p / "__init__.py").is_file()):
        row = next((line for line in text.splitlines() if line.startswith(f"| `noble_neuron.{sub.name}`")), None)
        if row is None:
            missing.append(sub.name)
            continue
        for module in sorted(sub.glob("*.py")) + sorted(d for d in sub.iterdir() if (d / "__init__.py").is_file()):
            if module.stem != "__init__" and f"`{module.stem}`" not in row:
                missing.append(f"{sub.name}.{module.stem}")
    assert missing == [], "README's package layout lacks these (sub)modules"
