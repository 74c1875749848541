"""The report end to end: every notebook executed by papermill (smoke profile, fixture data), the
book built with Sphinx warnings as errors, and the HTML checked for each figure, table and profile label."""
import json
import re
import shutil

import pytest

from conftest import SHARED  # noqa: F401  (conftest sets the offline caches)
from effcifar import book, report
from effcifar.config import ConfigError, to_dict


@pytest.fixture(scope="module")
def built_book(cifar_root, tmp_path_factory):
    root = book.book_sources(tmp_path_factory.mktemp("book"))
    times = book.reproduce(profile="smoke", data=cifar_root, verify=False, out=str(root / "results"),
                             root=root)
    return root / "_build" / "html", times


def _page(html_dir, name):
    return (html_dir / "book" / "generated" / f"{name}.html").read_text()


def _images(page):
    return len(re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", page))


@pytest.mark.slow
def test_every_page_and_profile_label(built_book):
    html_dir, times = built_book
    assert set(times) == set(book.NOTEBOOKS) | {"book"}
    intro = (html_dir / "book" / "intro.html").read_text()
    assert "Which profile produced this book" in intro and ">smoke<" in intro
    for name in book.NOTEBOOKS:
        page = _page(html_dir, name)
        assert 'data-profile="smoke"' in page and "Profile: smoke" in page, name
    for name in ("methods_classifier", "methods_dcgan", "reproducibility", "references", "protocol", "reference"):
        assert (html_dir / "book" / f"{name}.html").is_file()
    log = _page(html_dir, "07_runs")   # the run log: this build's runs, one row each
    for run in ("classifier-smoke-seed0", "dcgan-smoke-seed0", "fid-smoke-seed0"):
        assert f"<td>{run}</td>" in log, run
    assert "<td>finished</td>" in log and "<td>published</td>" not in log   # fixture runs are not committed


@pytest.mark.slow
def test_figures_and_tables(built_book):
    html_dir, _ = built_book
    data = _page(html_dir, "01_data")
    assert "Counts per split" in data and "Samples of every class" in data and _images(data) >= 1
    clf = _page(html_dir, "02_classifier")
    assert "Figure 2" in clf and _images(clf) >= 1
    assert "98,068" in clf and "94,005" in clf and "56.9 ± 4.6" in clf and "68.1 ± 4.3" in clf and "1.099" in clf
    gan = _page(html_dir, "03_dcgan")
    for heading in ("Figure 4", "Figure 5", "Figure 6", "FID against snapshot step", "Training curves"):
        assert heading in gan
    assert _images(gan) >= 5 and "46.85" in gan and "635812" in gan.replace(",", "")
    perf = _page(html_dir, "05_performance")
    for heading in ("Training steps against a naive loop", "A whole profile, end to end", "The whole report"):
        assert heading in perf
    assert "NVIDIA H100" in perf and "speed.py" in perf   # the committed GPU records
    summary = _page(html_dir, "04_summary")
    assert "56.9 ± 4.6" in summary and "46.85" in summary and "torch" in summary


@pytest.mark.slow
def test_narrative_numbers_are_glued(built_book):
    html_dir, _ = built_book
    methods = (html_dir / "book" / "methods_classifier.html").read_text()
    assert "94,005" in methods                         # pasted from the executed notebook
    repro = (html_dir / "book" / "reproducibility.html").read_text()
    assert "not tested by this build" in repro         # a smoke build claims nothing


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (.ci/run installs it)")
def test_pages_render_in_headless_chromium(built_book, tmp_path):
    """Every page opens in a real browser and shows more than a blank page."""
    from PIL import Image, ImageStat
    html_dir, _ = built_book
    pngs = book.screenshots(html_dir, tmp_path, height=1200)
    assert len(pngs) == len(book.SCREENSHOT_PAGES)
    for png in pngs:
        img = Image.open(png).convert("L")
        assert img.size == (1280, 1200), png
        assert ImageStat.Stat(img).stddev[0] > 10, f"{png.name} looks blank"


def test_benchmark_records(tmp_path):
    assert all(df.empty for df in report.benchmark_records(tmp_path).values())
    recs = report.benchmark_records()   # the committed records parse, with their device named
    assert (recs["speed"].device.str.contains("H100")).any()
    row = recs["end_to_end"].query("profile == 'paper'").iloc[0]
    assert row["total (min)"] == pytest.approx((row["classifier (s)"] + row["DCGAN (s)"] + row["FID (s)"]) / 60,
                                               rel=0.05)
    # a CPU record names its kind of CPU where its provenance has one (one device name, other speeds)
    prov = {"device": "cpu (x86_64, 2 threads)", "git_commit": "abcdef1234567", "versions": {"torch": "2.14.1"}}
    for name, extra in (("cpu_levers-1.json", {"cpu_signature": "x86_64-t2-4e9b3212"}), ("cpu_levers-2.json", {})):
        (tmp_path / name).write_text(json.dumps({"command": "c", "date": "2026-12-02", "provenance": {**prov, **extra},
                                                 "rows": [{"model": "dcgan", "lever": "eager", "steps_per_s": 2.45}]}))
    assert list(report.benchmark_records(tmp_path)["cpu_levers"].device) == [
        "cpu (x86_64, 2 threads), x86_64-t2-4e9b3212", "cpu (x86_64, 2 threads)"]


def test_cpu_run_times_lists_the_cpu_runs_of_a_profile(tmp_path):
    for run, device in [("classifier-paper-seed1", "cpu (x86_64, 2 threads)"), ("dcgan-paper-seed0", "NVIDIA H200"),
                        ("fid-paper-seed1", "cpu (x86_64, 2 threads)"), ("dcgan-quick-seed0",
                                                                         "cpu (x86_64, 2 threads)"),
                        ("fid-paper-seed2", "cpu (x86_64, 2 threads)")]:
        (tmp_path / run).mkdir()
        (tmp_path / run / "provenance.json").write_text(json.dumps(
            {"device": device, "wall_seconds": 600, "git_commit": "abcdef1234567", "versions": {"torch": "2.14.1"},
             **({"resumed_scores": 3} if run == "fid-paper-seed1" else {}),
             **({"reference_stats": "cached", "stage_seconds": {"setup": 6, "snapshots": 300, "sweep": 294}}
                if run == "fid-paper-seed2" else {})}))
        (tmp_path / run / "history.csv").write_text("step,wall_seconds\n1,100\n2,200\n3,300\n")   # none stopped
    t = report.cpu_run_times(tmp_path)
    assert list(t.run) == ["classifier-paper-seed1", "fid-paper-seed1", "fid-paper-seed2"]
    assert list(t.stage) == ["classifier", "fid", "fid"] and list(t.minutes) == [10, 10, 10]
    assert list(t.resumed) == [False, True, False]
    assert list(t["test statistics"]) == ["", "not recorded", "cached"]   # an FID's cache hit is a shorter run
    assert t["sweep (min)"].isna().tolist() == [True, True, False] and t["sweep (min)"].iloc[2] == 4.9
    assert report.cpu_run_times(tmp_path / "none").empty


def test_tables_show_a_run_not_made_as_a_dash_not_nan():
    import pandas as pd
    html = report.table(pd.DataFrame({"variant": ["ema", "ttur"], "FID": [39.21, float("nan")]}),
                        FID="{:.2f}".format).data
    assert "39.21" in html and "–" in html and "nan" not in html.lower()


def test_the_paper_is_held_against_our_seed_spread_from_three_seeds_on():
    assert report.seed_spread([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert report.within_spread(4.0, [1.0, 2.0, 3.0]) and not report.within_spread(4.01, [1.0, 2.0, 3.0])
    two = report.against_seeds(46.85, [41.59, 41.25])
    assert two.startswith("over 2 seeds: mean 41.42, std 0.24") and "too few" in two and "inside" not in two
    assert report.against_seeds(56.9, [56.22, 54.47, 54.01]).endswith("the paper's 56.9 is inside our mean ± 2 std "
                                                                      "(54.90 ± 2.33)")
    assert "46.85 is outside" in report.against_seeds(46.85, [41.59, 41.25, 42.0])
    assert report.seed_summary([41.59]) == "over 1 seed: mean 41.59"


def test_lever_runs_set_a_speed_lever_beside_the_fp32_seeds(tmp_path):
    P = report.parameters(dict(profile="paper", seed=0, data=str(tmp_path), verify=False, out=str(tmp_path),
                               device="cpu", retrain=False, train=False))

    def finish(experiment, seed, variant, metrics, minutes=60, stopped=0):
        d = tmp_path / P.config(experiment, seed=seed, variant=variant).run_name
        d.mkdir()
        step = 60 * (minutes - stopped) / 10   # ten rows of history, one of them with the process stopped too
        walls = [step * (i + 1) + 60 * stopped * (i >= 4) for i in range(10)]
        (d / "history.csv").write_text("step,wall_seconds\n" + "".join(f"{i},{w}\n" for i, w in enumerate(walls)))
        (d / "config.json").write_text(json.dumps(to_dict(P.config(experiment, seed=seed, variant=variant))))
        (d / "metrics.json").write_text(json.dumps(metrics))
        (d / "provenance.json").write_text(json.dumps({"device": "cpu", "wall_seconds": 60 * minutes}))

    for seed, acc in enumerate([0.55, 0.54, 0.56]):
        finish("classifier", seed, "", {"test_acc": acc, "final_train_loss": 1.1})
    finish("classifier", 0, "bf16_compile", {"test_acc": 0.6, "final_train_loss": 1.0}, minutes=30, stopped=10)
    t = P.lever_runs("classifier", "bf16_compile", "bf16 + compile")
    assert list(t.recipe) == ["fp32"] * 3 + ["bf16 + compile"]
    assert t["test accuracy (%)"].round(6).tolist() == [55, 54, 56, 60]
    assert [round(m, 6) for m in t["training (min)"]] == [60, 60, 60, 20]   # 30 of wall time, 10 of it stopped
    finish("dcgan", 0, "", {})
    finish("dcgan", 1, "", {})                                        # its FID is not finished: no row
    finish("dcgan", 0, "bf16", {})
    finish("fid", 0, "", {"fid": {"46000": 41.0, "50000": 40.0}})
    finish("fid", 0, "bf16", {"fid": {"46000": 43.5, "50000": 42.0}})
    t = P.lever_runs("dcgan", "bf16", "bf16")
    assert list(t.run) == ["dcgan-paper-seed0", "dcgan-paper-bf16-seed0"] and list(t["FID at 46000"]) == [41.0, 43.5]
    assert report.lever_verdict(t, "bf16")[0] == "FID at 46000"
    assert not report.lever_verdict(t, "bf16")[3]                     # one fp32 seed: no spread to be inside
    score, fp32, lever, inside = report.lever_verdict(P.lever_runs("classifier", "bf16_compile", "bf16 + compile"),
                                                      "bf16 + compile")
    assert score == "test accuracy (%)" and len(fp32) == 3 and not inside   # 60 is outside 55 ± 2
    assert report.lever_verdict(t, "compile") is None


def test_unknown_notebook_parameter_is_an_error():
    ns = dict(profile="smoke", seed=0, data=None, verify=False, out="r", device="cpu", retrain=False, train=True,
              stepz=3)
    with pytest.raises(ConfigError, match="stepz"):
        report.parameters(ns)
    ns.pop("stepz")
    assert report.parameters(ns).profile == "smoke"


def test_a_variant_parameter_selects_that_variant_where_it_applies():
    ns = dict(profile="paper", seed=1, data=None, verify=True, out="r", device="cpu", retrain=False, train=True,
              variant="onecycle")
    p = report.parameters(ns)
    assert p.config("classifier").run_name == "classifier-paper-onecycle-seed1"
    assert p.config("dcgan").run_name == "dcgan-paper-seed1"   # no such DCGAN variant: the paper's recipe
    with pytest.raises(ConfigError, match="unknown variant 'fast'"):
        report.parameters({**ns, "variant": "fast"})


def test_failing_cell_names_notebook_and_cell(tmp_path):
    with pytest.raises(book.NotebookError, match=r"notebooks/02_classifier.py failed in cell .*ConfigError"):
        params = dict(profile="smoke", seed="not-a-number", data=str(tmp_path), verify=False, out=str(tmp_path),
                      device="cpu", retrain=False)
        book.execute_notebook("02_classifier", params, tmp_path)


def test_every_notebook_cell_compiles():
    """Cheap guard, seconds instead of a book build: every code cell of every notebook is valid Python."""
    import jupytext
    for name in book.NOTEBOOKS:
        nb = jupytext.read(book.ROOT / "notebooks" / f"{name}.py")
        tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
        assert ["parameters", "remove-cell"] in tags, name
        for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            compile(cell.source, f"{name}.py cell {i}", "exec")
