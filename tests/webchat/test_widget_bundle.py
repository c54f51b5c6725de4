"""The embeddable widget's shipped files: size budgets, no HTML-string DOM APIs, fresh bundles.

No database: these read files and run the widget's Node build and unit tests.
"""

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WIDGET = ROOT / "webchat" / "widget"
STATIC = ROOT / "static" / "webchat"
BUNDLES = ("loader.js", "widget.js")

LOADER_BUDGET = 3 * 1024
TOTAL_BUDGET = 15 * 1024

# APIs that parse strings as HTML or code. Message text must only reach the DOM as text nodes.
FORBIDDEN = {
    "innerHTML": re.compile(r"innerHTML"),
    "outerHTML": re.compile(r"outerHTML"),
    "insertAdjacentHTML": re.compile(r"insertAdjacentHTML"),
    "document.write": re.compile(r"document\.write"),
    "eval(": re.compile(r"(?<![\w$.])eval\s*\("),
    "new Function": re.compile(r"new\s+Function\b"),
}


def gzipped_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def npm(*args: str, prefix: Path = WIDGET) -> None:
    """npm in `prefix`. No skip when npm is missing: `make test` installs Node first, and a
    missing tool is a failure, as a missing service is."""
    subprocess.run(["npm", "--prefix", str(prefix), *args], check=True, cwd=ROOT, timeout=300)


def widget_copy(tmp_path: Path) -> Path:
    """The widget's sources and lockfile in a folder of the test's own, so its `npm ci`
    never replaces the node_modules that other tests, builds and sessions use."""
    copy = tmp_path / "widget"
    shutil.copytree(WIDGET, copy, ignore=shutil.ignore_patterns("node_modules"))
    return copy


def test_loader_fits_its_budget():
    size = gzipped_size(STATIC / "loader.js")
    assert size <= LOADER_BUDGET, f"loader.js is {size} B gzipped, budget {LOADER_BUDGET} B"


def test_loader_and_widget_fit_the_total_budget():
    sizes = {name: gzipped_size(STATIC / name) for name in BUNDLES}
    assert sum(sizes.values()) <= TOTAL_BUDGET, f"{sizes} gzipped, budget {TOTAL_BUDGET} B in all"


@pytest.mark.parametrize(
    "path",
    [
        *sorted((WIDGET / "src").rglob("*.js")),
        *(STATIC / name for name in BUNDLES),
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_html_or_code_from_strings(path):
    text = path.read_text(encoding="utf-8")
    found = [name for name, pattern in FORBIDDEN.items() if pattern.search(text)]
    assert not found, f"{path.relative_to(ROOT)} uses {found}"


@pytest.mark.slow
def test_committed_bundles_match_a_fresh_build(tmp_path):
    widget = widget_copy(tmp_path)
    built = tmp_path / "built"
    npm("ci", "--no-audit", "--no-fund", prefix=widget)
    npm("run", "build", "--", "--outdir", str(built), prefix=widget)
    stale = [
        name for name in BUNDLES if (built / name).read_bytes() != (STATIC / name).read_bytes()
    ]
    assert not stale, (
        f"static/webchat/{stale} differ from a fresh build: run `npm --prefix webchat/widget run build`"
    )


@pytest.mark.slow
def test_widget_unit_tests_pass():
    npm("test")
