"""The report's pipeline: every notebook executed with papermill (``execute_notebook``), the Jupyter Book
built (``build_book``), screenshots of its pages, and ``reproduce()``, which does all of it for a profile."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import PROFILES, ConfigError, make_config
from .report import ROOT, dataset_label

NOTEBOOKS = ("01_data", "02_classifier", "03_dcgan", "04_summary", "05_performance", "06_beyond", "07_runs")
GENERATED = ROOT / "book" / "generated"


class NotebookError(RuntimeError):
    pass


def execute_notebook(name: str, parameters: dict, out_dir: Path = GENERATED) -> Path:
    """Convert ``notebooks/<name>.py`` (jupytext percent format) and execute it with papermill into
    ``out_dir/<name>.ipynb``. A failing cell raises ``NotebookError`` naming the notebook and cell."""
    out_dir = Path(out_dir)
    import jupytext
    import papermill as pm
    out_dir.mkdir(parents=True, exist_ok=True)
    source = ROOT / "notebooks" / f"{name}.py"
    target = out_dir / f"{name}.ipynb"
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    jupytext.write(nb, target)
    try:
        pm.execute_notebook(str(target), str(target), parameters=parameters, kernel_name="python3",
                            cwd=str(ROOT), progress_bar=False, log_output=False)
    except pm.PapermillExecutionError as e:
        raise NotebookError(f"notebook {source.relative_to(ROOT)} failed in cell {e.exec_count} "
                            f"({e.ename}: {e.evalue}); the executed notebook with the traceback is {target}") from None
    _hide_injected_parameters(target)
    return target


def _hide_injected_parameters(path: Path) -> None:
    """The book shows the profile banner; papermill's injected parameters cell is left out of the page."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, path)


def book_sources(dest: Path) -> Path:
    """Copy the book's sources (config, toc, narrative pages) to ``dest``, to build a book elsewhere
    (tests) without touching the one in the repository."""
    dest = Path(dest)
    (dest / "book").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, dest / name)
    for page in [*(ROOT / "book").glob("*.md"), *(ROOT / "book").glob("*.bib")]:
        shutil.copy(page, dest / "book" / page.name)
    shutil.copytree(ROOT / "_static", dest / "_static", dirs_exist_ok=True)
    return dest


def build_book(root: Path = ROOT, warnings_are_errors: bool = True, builder: str = "html") -> Path:
    """``jupyter-book build`` (Sphinx warnings are errors) with ``builder`` (``html``, or ``singlehtml``: every
    page on one); returns its output folder."""
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "--all",  # no stale glue
           "--builder", builder]
    if warnings_are_errors:
        cmd += ["--warningiserror", "--keep-going"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if done.returncode:
        log = "\n".join(l for l in done.stdout.splitlines() + done.stderr.splitlines()
                        if "WARNING" in l or "ERROR" in l or "Error" in l)
        raise NotebookError(f"jupyter-book build --builder {builder} failed:\n{log or done.stdout[-3000:]}")
    return Path(root) / "_build" / builder


def build_pdf(root: Path = ROOT) -> Path:
    """The built book as one PDF, ``_build/pdf/effcifar.pdf``: every page on one HTML page (``jupyter-book build
    --builder singlehtml``, from the notebooks ``reproduce`` executed), printed by headless Chromium with the
    book's print style sheet (``_static/print.css``: no navigation, tables and figures not cut across pages).
    A copy goes into ``_build/html/`` beside the site, which links to it."""
    root = Path(root)
    if not any((root / "book" / "generated").glob("*.ipynb")):
        raise FileNotFoundError(f"no executed notebooks in {root / 'book' / 'generated'}: run "
                                "python -m effcifar reproduce first")
    single = build_book(root, builder="singlehtml")
    # the whole book is the root page (book/intro.html), whose links are written as if it lay at the top of
    # the build: print a copy from there, or its style sheets and figures are not found
    page, pdf = single / "effcifar.html", root / "_build" / "pdf" / "effcifar.pdf"
    shutil.copy(single / "book" / "intro.html", page)
    pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile_dir:
        subprocess.run([browser(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", f"--print-to-pdf={pdf}",
                        "--no-pdf-header-footer", "--virtual-time-budget=20000", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=600)
    if (root / "_build" / "html").is_dir():
        shutil.copy(pdf, root / "_build" / "html" / pdf.name)
    return pdf


def browser() -> str:
    """Headless Chromium: Debian's ``chromium``, or Google's Chrome where that is what the machine has."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    raise FileNotFoundError("chromium not found; install it with: apt-get install chromium")


SCREENSHOT_PAGES = ("book/intro", *(f"book/generated/{n}" for n in NOTEBOOKS), "book/reproducibility")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars")


def screenshots(html_dir: Path, out_dir: Path, width: int = 1280, height: int = 2400) -> list[Path]:
    """PNG screenshots of the introduction and every results page of a built book, in headless
    Chromium (Debian package ``chromium``)."""
    chromium = browser()
    html_dir, out_dir = Path(html_dir).resolve(), Path(out_dir)
    missing = [p for p in SCREENSHOT_PAGES if not (html_dir / f"{p}.html").is_file()]
    if missing:
        raise FileNotFoundError(f"{html_dir} lacks {missing}; build the book first (python -m effcifar reproduce)")
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = []
    with tempfile.TemporaryDirectory() as profile_dir:
        for page in SCREENSHOT_PAGES:
            png = (out_dir / f"{page.rsplit('/', 1)[1]}.png").resolve()
            subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}",
                            f"--window-size={width},{height}", f"--screenshot={png}",
                            (html_dir / f"{page}.html").as_uri()], check=True, capture_output=True, timeout=120)
            pngs.append(png)
    return pngs


def reproduce(profile: str = "paper", data: str | None = None, verify: bool = True, out: str = "results",
              seed: int = 0, retrain: bool = False, device: str = "auto", book: bool = True,
              train: bool = True, notebooks=NOTEBOOKS, root: Path = ROOT, variant: str = "") -> dict:
    """Execute every notebook for ``profile`` (reusing finished runs unless ``retrain``; with ``train``
    off, only finished runs, nothing is trained), then build the book. Returns seconds per notebook and
    for the book."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    if retrain and not train:
        raise ConfigError("retrain and train=False contradict each other")
    params = dict(profile=profile, seed=seed, data=data, verify=verify, out=str(Path(out).resolve()),
                  device=device, retrain=retrain, train=train, variant=variant)
    times = {}
    for name in notebooks:
        t0 = time.perf_counter()
        print(f"[effcifar] executing notebooks/{name}.py ({profile})", file=sys.stderr, flush=True)
        execute_notebook(name, params, Path(root) / "book" / "generated")
        times[name] = round(time.perf_counter() - t0, 1)
    if book:
        t0 = time.perf_counter()
        html_dir = build_book(root)
        times["book"] = round(time.perf_counter() - t0, 1)
        print(f"[effcifar] book: {html_dir / 'index.html'}", file=sys.stderr)
    print(f"[effcifar] seconds: {times}", file=sys.stderr)
    if tuple(notebooks) == NOTEBOOKS:   # a record for the Performance page of the next build
        from .results import provenance, resolve_device, write_json
        bench = Path(root) / "results" / "benchmark"   # beside the book it timed
        bench.mkdir(parents=True, exist_ok=True)
        dev = resolve_device(device)
        kind = "retrain" if retrain else "cached"   # from scratch, or rebuilt from finished runs
        write_json(bench / f"reproduce-{profile}-{dev.type}-{kind}.json", {
            "profile": profile, "date": time.strftime("%Y-%m-%d"), "seconds": times, "retrain": retrain,
            "data": dataset_label(verify),
            "provenance": provenance(make_config("classifier", profile, seed=seed), dev, sum(times.values()))})
    return times
