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

needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="Node/npm not installed")


def gzipped_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def npm(*args: str) -> None:
    subprocess.run(["npm", "--prefix", str(WIDGET), *args], check=True, cwd=ROOT, timeout=300)


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
@needs_npm
def test_committed_bundles_match_a_fresh_build(tmp_path):
    npm("ci", "--no-audit", "--no-fund")
    npm("run", "build", "--", "--outdir", str(tmp_path))
    stale = [
        name for name in BUNDLES if (tmp_path / name).read_bytes() != (STATIC / name).read_bytes()
    ]
    assert not stale, (
        f"static/webchat/{stale} differ from a fresh build: run `npm --prefix webchat/widget run build`"
    )


@pytest.mark.slow
@needs_npm
def test_widget_unit_tests_pass():
    npm("test")
