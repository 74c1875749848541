"""The published runs in results/ (the book's appendix "Published runs"; how to publish them: "Publishing and
replaying runs") stay tied to the code that made them.
When a run is published, ``record_fingerprint`` replays its first steps (250 of a classifier, 500 of a
DCGAN) from its committed config on the real data; only if the history comes out the same (to 1e-6;
bitwise in practice on the same CPU) does it keep a short replay with finer rows, ``fingerprint.csv``
(the first 30 or 50 steps). CI replays that in seconds and requires it to 1e-6: a change that alters the
numbers fails here until the runs are published again. Another kind of CPU rounds otherwise (its
``cpu_signature``): there the reference is the fingerprint recorded on that kind, ``fingerprint-<signature>.csv``
(``record_cpu_fingerprint``, from code that matched ``fingerprint.csv`` on the kind that recorded it,
``fingerprint_kind``: ``FIRST_KIND`` for the older runs, where it is exact too); on a kind with none,
only a difference beyond ``ROUNDING`` times the recorded kinds' own (``kinds_spread``) fails, and a smaller one
skips with the signature named; a run whose ``fingerprint.csv`` another kind recorded (``fingerprint_kind``, from
its provenance) and no other kind has is skipped without a replay there. A run made on a GPU is held against the CPU
replay of its first steps recorded when it was published (``cpu_prefix.csv``, same random draws, other
rounding).

One run per config is replayed (seeds aside): a change that alters the numbers alters every seed's, so
the other seeds of a config cost CI time without adding coverage. ``EFFCIFAR_REPLAY=all`` replays the
full first steps of every published run against its history (before publishing runs again, say)."""
import functools
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import SHARED
from effcifar.classifier import saved_evaluation
from effcifar.replay import (
    CPU_PREFIX,
    FINGERPRINT,
    PREFIX,
    fingerprint_kind,
    fingerprint_of,
    kinds_spread,
    prefix_steps,
    replay_fingerprint,
    replay_prefix,
)
from effcifar.results import comparable, cpu_signature, experiment_of, read_json, run_config
from test_site import check_pdf, machine_paths

ROOT = Path(__file__).resolve().parents[1]
ROUNDING = 5   # on a kind of CPU without a fingerprint of its own: up to this many times the recorded kinds'
              # spread counts as rounding (their distances to fingerprint.csv differ up to 4x run by run)


def _committed(pattern: str) -> list[Path]:
    import subprocess
    out = subprocess.run(["git", "ls-files", "--", pattern], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in out.stdout.splitlines()]


# committed runs: a run still training in results/ (history.csv, no metrics yet) is not published
PUBLISHED = sorted(p.parent for p in _committed("results/*-seed*/history.csv") if experiment_of(p.parent) in PREFIX)


@functools.cache
def replayed() -> dict:
    """{published run: the run replayed for it}. Per config but the seed, the preferred run was made on the
    CPU (its history is the run itself, not a CPU replay recorded beside a GPU run), then the lowest seed."""
    groups = {}
    for run in PUBLISHED:
        key = json.dumps(comparable(read_json(run / "config.json"), ignore={"seed"}), sort_keys=True)
        groups.setdefault((experiment_of(run), key), []).append(run)
    rank = lambda run: (not _made_on_cpu(run), read_json(run / "config.json")["seed"])
    return {run: min(group, key=rank) for group in groups.values() for run in group}


def _has_browser(book) -> bool:
    try:
        return bool(book.browser())
    except FileNotFoundError:
        return False


def _made_on_cpu(run: Path) -> bool:
    return (run / "provenance.json").is_file() and read_json(run / "provenance.json")["device"].startswith("cpu")


def test_published_runs_are_complete():
    assert PUBLISHED, "no published runs in results/"
    for run, other in replayed().items():   # seeds of one experiment, profile and variant share a replay
        assert other.name.rsplit("-seed", 1)[0] == run.name.rsplit("-seed", 1)[0], (run, other)
    for run in PUBLISHED:
        assert {"config.json", "history.csv", "metrics.json", "provenance.json"} <= {p.name for p in run.iterdir()}
        assert read_json(run / "config.json")["verify"] is True, f"{run} is not on the verified CIFAR-100"
        assert not _tracked(run / "checkpoint.pt"), "optimizer checkpoints are never committed"
        if not _made_on_cpu(run):
            assert (run / CPU_PREFIX).is_file(), f"{run} was made on a GPU: python -m effcifar publish it"
        if replayed()[run] == run:
            assert (run / FINGERPRINT).is_file(), f"{run} has no {FINGERPRINT}: python -m effcifar publish it"
        if experiment_of(run) == "classifier":   # the book's flip table: the other evaluation, of these weights
            flip = not run_config(run)["tta_flip"]
            assert saved_evaluation(run, flip) is not None, (
                f"{run}: python -m effcifar evaluate {run.relative_to(ROOT)}{' --flip' if flip else ''} --save")


def _tracked(path: Path) -> bool:
    return bool(_committed(str(path.relative_to(ROOT))))


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "cifar-100-python" / "train").is_file(),
                    reason="real CIFAR-100 not in ../shared/data (see its README)")
@pytest.mark.parametrize("run", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_published_run_replays_exactly(run, tmp_path):
    full = os.environ.get("EFFCIFAR_REPLAY") == "all"
    if replayed()[run] != run and not full:
        pytest.skip(f"same config as {replayed()[run].name} but the seed, replayed there (EFFCIFAR_REPLAY=all: all)")
    maker, here = fingerprint_kind(run), cpu_signature()
    if not full and maker != here and fingerprint_of(run) == run / FINGERPRINT and not kinds_spread(run):
        # recorded on another kind and on no other: nothing tells this kind's rounding from a change, so a
        # replay here could only skip (after minutes, for a bf16 run on a CPU that emulates bf16)
        pytest.skip(f"{FINGERPRINT} was recorded on {maker} and this kind of CPU ({here}) has no fingerprint of "
                    "its own: not replayed; record this kind's: python -m effcifar publish RUN --cpu-kind")
    if full:
        diffs = replay_prefix(run, prefix_steps(run), tmp_path, data=str(SHARED))
    else:
        diffs = replay_fingerprint(run, tmp_path, data=str(SHARED))
    assert diffs.pop("history").is_file() and diffs.pop("rows") >= 1
    reference = diffs.pop("reference", None)
    if diffs["worst"] > 1e-6 and reference == run / FINGERPRINT and maker != here and (spread := kinds_spread(run)):
        # a kind of CPU with no fingerprint of its own: its rounding and a small change of the code look alike,
        # so only a difference beyond what rounding made on the recorded kinds is a failure here (on the kind
        # that recorded fingerprint.csv, any difference is)
        assert diffs["worst"] <= ROUNDING * spread, (
            f"{diffs} against {reference}: more than {ROUNDING}x the {spread:.1e} by which the recorded kinds of CPU "
            f"differ from it, so a change of the numbers, not rounding (this CPU: {cpu_signature()})")
        pytest.skip(f"this kind of CPU ({cpu_signature()}) has no fingerprint of its own: {diffs['worst']:.1e} off "
                    f"{FINGERPRINT}, within {ROUNDING}x the {spread:.1e} of the recorded kinds; only an exact replay "
                    "tells rounding from a change: record this kind's: python -m effcifar publish RUN --cpu-kind")
    assert diffs["worst"] <= 1e-6, (f"{diffs} against {reference}; this CPU: {cpu_signature()} (another kind of "
                                    "CPU can round otherwise: book appendix, 'Publishing and replaying runs')")


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "cifar-100-python" / "train").is_file(),
                    reason="real CIFAR-100 not in ../shared/data (see its README)")
def test_published_paper_book_builds_from_the_published_runs(tmp_path):
    """`python -m effcifar reproduce --profile paper --data ../shared/data --no-train`: the published
    book, from the committed runs alone, in minutes; nothing is trained or scored."""
    from effcifar import book
    root = book.book_sources(tmp_path / "book")
    before = {p: p.stat().st_mtime_ns for p in (ROOT / "results").rglob("*") if p.is_file()}
    book.reproduce(profile="paper", data=str(SHARED), out=str(ROOT / "results"), root=root, train=False)
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "results").rglob("*") if p.is_file()} == before
    assert machine_paths(root / "_build" / "html") == []   # runs named relative to results/, never by this machine
    if shutil.which("pdftotext") and _has_browser(book):
        check_pdf(book.build_pdf(root))   # every chapter and the headline numbers, in the PDF the site links to
        assert (root / "_build" / "html" / "effcifar.pdf").is_file()
    html = root / "_build" / "html" / "book"
    clf = (html / "generated" / "02_classifier.html").read_text()
    metrics = read_json(ROOT / "results" / "classifier-paper-seed0" / "metrics.json")
    assert 'data-profile="paper"' in clf and f"{100 * metrics['test_acc']:.1f} ± " in clf
    data = (html / "generated" / "01_data.html").read_text()
    assert "50,000" in data and "cattle" in data
    gan = (html / "generated" / "03_dcgan.html").read_text()
    floor = ROOT / "results" / "fid_floor-paper-seed0" / "metrics.json"
    if floor.is_file():
        assert read_json(floor)["n_train_images"] == 10_000 and read_json(floor)["inception"] == "pytorch-fid"
        assert f"{read_json(floor)['fid']:.2f}" in gan
    else:
        assert "FID floor is not published yet" in gan
    if not (ROOT / "results" / "dcgan-paper-seed0").is_dir():
        assert "dcgan run is not published yet" in gan
    perf = (html / "generated" / "05_performance.html").read_text()
    for result, reading in (("classifier-paper-bf16_compile-seed0",
                             r"Classifier, test accuracy \(%\): fp32 .* bf16 \+ compile"),
                            ("fid-paper-bf16-seed0", r"DCGAN, FID at 46000: fp32 .* bf16")):
        if (ROOT / "results" / result).is_dir():   # a speed lever's full run, held against fp32's seeds
            assert re.search(reading + r": [\d.]+, (inside|outside) the fp32 mean ± 2 std", perf), result
    beyond = (html / "generated" / "06_beyond.html").read_text()
    assert re.search(r"Lowest so far: <strong>[\w ()]+</strong>, FID [\d.]+ \(10,000 samples, at (46|50)k; \d+ "
                     r"seeds?(, their mean)?\); the targets table above judges it", beyond)
    assert re.search(r"at most 28 \(FID at (46|50)k\)</td>.*?<td>(met|not met: [\d.]+ short|not judged yet: no "
                     r"recipe has three seeds)</td>", beyond, re.S)   # each target's verdict, on three seeds
    # a reshaped G, read against its baseline
    if (ROOT / "results" / "dcgan-paper-hires_ema_flip_bf16-seed0").is_dir():
        assert re.search(r"D\(x\) / D\(G\(z\)\) over the last tenth of the run: .*hires_ema_flip_bf16(</\w+>)* "
                         r"[\d.]+ / [\d.]+ \(its baseline", beyond)
    n_gans = sum(1 for p in PUBLISHED if p.name.startswith("dcgan-paper-"))   # every one read for the collapse signs
    assert re.search(rf"Over {n_gans} runs and [\d,]+ log windows, the discriminator won outright", beyond)
    if "below the diversity threshold of" in beyond:   # each low snapshot says whether the guard would go back
        assert re.search(r"at its last snapshot; (after a diverse one: the guard would go back|before any diverse "
                         r"one: the guard would go on)\)", beyond)
    if any((ROOT / "results").glob("fid-paper-*-batchbn")):   # the samples drawn with batch statistics, too
        assert re.search(r"Lowest with batch statistics: <strong>[\w ()]+</strong> "
                         r"\(seed \d, step [\d,]+\), FID [\d.]+", beyond)
    against = r"times the budget\) scores [+-][\d.]+ points against <code[^>]*>(<span[^>]*>)?strong_lr8_bf16_compile"
    assert "No reference over the budget has finished yet" in beyond or re.search(against, beyond)   # its baseline
    if any((ROOT / "results").glob("fid-paper-hires_wide_all-seed*-screen*")):   # the GAN's reference over the budget
        assert re.search(r"times the budget\) ends at FID [\d.]+ \(1,000 samples\) at step [\d,]+, [+-][\d.]+ against "
                         r"<code[^>]*>(<span[^>]*>)?hires_ema_flip_bf16.*?: (below|inside|above) the range of its "
                         r"seeds\. Its D\(x\) / D\(G\(z\)\) over the last tenth is [\d.]+ / [\d.]+", beyond)
    else:
        assert "No reference over the budget has been screened yet" in beyond
    if (ROOT / "results" / "fid-paper-hires_wide_all-seed0").is_dir():   # its whole run outranks the screen
        assert re.search(r"Its whole run: <code[^>]*>(<span[^>]*>)?hires_wide_all(</\w+>)* scores FID [\d.]+ at 50k",
                         beyond)
        assert re.search(r"Snapshot by snapshot \(1,000 samples, .*?\), it lies (below|inside|above) their range "
                         r"from step [\d,]+ on\.", beyond)
    assert re.search(r"<strong>classifier: at least 68 \(% test accuracy\)</strong>: (met|not met: [\d.]+ short), on "
                     r"<code[^>]*>(<span[^>]*>)?\w+", beyond)   # where the second round stands, read from the above
    if any((ROOT / "results").glob("fid-paper-*-screen*")):   # each screen against its baseline's seed range
        assert re.search(r"Against the range of the baseline.s seeds at that step, \d+ end below it, \d+ inside it "
                         r"and \d+ above it\.", beyond)


def _seed_values(experiment: str, variant: str, read) -> list[float]:
    """``read(metrics)`` of every committed seed of one recipe of the paper profile."""
    name = f"{experiment}-paper{'-' + variant if variant else ''}-seed"
    runs = sorted(p.parent for p in _committed(f"results/{name}*/metrics.json") if p.parent.name[len(name):].isdigit())
    return [read(read_json(run / "metrics.json")) for run in runs]


def _spread(values: list[float]) -> str:
    import statistics
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def test_the_readme_headline_is_the_published_runs():
    """README's results table is typed, so it is held to the run folders: each cell is the mean ± std over the
    committed seeds of the recipe it names, with their number."""
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| ")}
    accuracy = lambda m: 100 * m["test_acc"]   # noqa: E731
    fid46 = lambda m: m["fid"]["46000"]   # noqa: E731
    for key, experiment, read in (("classifier test accuracy (%)", "classifier", accuracy),
                                  ("DCGAN FID at 46k steps (10,000 samples)", "fid", fid46)):
        paper_recipe, best = rows[key].split("|")[3:5]
        assert paper_recipe.strip().startswith(_spread(_seed_values(experiment, "", read)) + " ("), key
        value, variant, seeds = re.match(r" ([\d.]+(?: ± [\d.]+)?), `(\w+)`, (\d+) seeds?", best).groups()
        values = _seed_values(experiment, variant, read)
        assert (value, int(seeds)) == (_spread(values), len(values)), key
