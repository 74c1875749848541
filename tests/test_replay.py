"""The replay checks that tie a published run to the code (effcifar.replay), on fixture runs."""
import csv
import json

import pytest

from conftest import fixture_overrides
from effcifar import replay, results
from effcifar.classifier import train_classifier
from effcifar.config import make_config
from effcifar.dcgan import train_dcgan
from effcifar.results import cpu_signature

slow = pytest.mark.slow   # each replays a run


def _history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@slow
@pytest.mark.parametrize("experiment", ["classifier", "dcgan"])
def test_a_fingerprint_is_kept_only_when_the_full_replay_agrees_and_catches_a_changed_recipe(
        experiment, cifar_root, tmp_path, monkeypatch):
    """CI's quick check (tests/test_published.py): record_fingerprint keeps a short replay with finer rows
    only after the full prefix replays the run's history; replay_fingerprint then matches it exactly, and
    fails for a recipe that gives other numbers. Here with fixture sizes for PREFIX and SHORreplay."""
    monkeypatch.setattr(replay, "PREFIX", {experiment: 8})
    every = "eval_every" if experiment == "classifier" else "log_every"
    monkeypatch.setattr(replay, "SHORT", {experiment: (4, {every: 2, "ckpt_every": 4})})
    run = {"classifier": train_classifier, "dcgan": train_dcgan}[experiment](
        make_config(experiment, "smoke", **fixture_overrides(cifar_root, tmp_path / "run")), progress=False)
    assert replay.record_fingerprint(run) == run / replay.FINGERPRINT
    assert replay.fingerprint_kind(run) == cpu_signature()   # recorded on the kind of CPU that made the run
    assert [r.split(",")[0] for r in (run / replay.FINGERPRINT).read_text().splitlines()[1:]] == ["2", "4"]
    diffs = replay.replay_fingerprint(run, tmp_path / "quick")
    assert diffs.pop("history").is_file() and diffs.pop("rows") == 2
    assert diffs.pop("reference") == run / replay.FINGERPRINT
    assert max(diffs.values()) == 0
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "lr": config["lr"] * 3}))
    assert replay.replay_fingerprint(run, tmp_path / "other")["worst"] > 1e-4
    with pytest.raises(ValueError, match="publish the run again"):   # the full check fails: nothing is kept
        (run / replay.FINGERPRINT).unlink()
        replay.record_fingerprint(run)
    assert not (run / replay.FINGERPRINT).exists()


@pytest.mark.parametrize("device, signature, kind", [
    ("cpu (x86_64, 2 threads)", "x86_64-t2-other", "x86_64-t2-other"),   # provenance names the kind
    ("cpu (x86_64, 2 threads)", None, "first"),    # published before provenance recorded the signature
    ("NVIDIA H200", "x86_64-t2-other", "first"),   # a GPU run: its CPU prefix was fingerprinted on the first kind
])
def test_the_kind_that_recorded_a_fingerprint(device, signature, kind, tmp_path):
    """The published-run check holds a run's fingerprint.csv exactly on this kind and only there: the kind the
    run was made on, else FIRST_KIND (all older fingerprints replay exactly there)."""
    results.write_json(tmp_path / "provenance.json", {"device": device,
                                                      **({"cpu_signature": signature} if signature else {})})
    assert replay.fingerprint_kind(tmp_path) == (replay.FIRST_KIND if kind == "first" else kind)


@slow
def test_a_cpu_of_another_kind_replays_against_a_fingerprint_of_its_own(cifar_root, tmp_path, monkeypatch):
    """Two kinds of CPU round differently (the published runs' first steps differ by 1e-2 on another kind):
    a fingerprint recorded on this kind (``record_cpu_fingerprint``) is the reference here, the published
    one stays the reference everywhere else, and a changed recipe still fails against either."""
    monkeypatch.setattr(replay, "SHORT", {"dcgan": (4, {"log_every": 2, "ckpt_every": 4})})
    run = train_dcgan(make_config("dcgan", "smoke", **fixture_overrides(cifar_root, tmp_path / "run")), progress=False)
    monkeypatch.setattr(replay, "cpu_signature", lambda: "first-kind")
    rows = _history(replay.record_cpu_fingerprint(run).rename(run / replay.FINGERPRINT).parent / replay.FINGERPRINT)
    for r in rows:   # the published fingerprint, as a CPU of another kind would see it: other last bits
        r["loss_D"] = str(float(r["loss_D"]) + 1e-3)
    results.write_csv(run / replay.FINGERPRINT, rows)
    assert replay.replay_fingerprint(run, tmp_path / "0")["worst"] > 1e-4
    monkeypatch.setattr(replay, "cpu_signature", lambda: "other-kind")
    assert replay.fingerprint_of(run) == run / replay.FINGERPRINT
    assert replay.replay_fingerprint(run, tmp_path / "a")["worst"] > 1e-4
    assert replay.record_cpu_fingerprint(run) == run / "fingerprint-other-kind.csv" == replay.fingerprint_of(run)
    diffs = replay.replay_fingerprint(run, tmp_path / "b")
    assert diffs["reference"] == run / "fingerprint-other-kind.csv" and diffs["worst"] == 0 and diffs["rows"] == 2
    # how far the kinds' rounding moves the published fingerprint: the check's bound on a kind with none of its own
    assert replay.kinds_spread(run) == pytest.approx(1e-3, abs=1e-6)
    (run / "fingerprint-other-kind.csv").unlink()
    assert replay.kinds_spread(run) == 0
    replay.record_cpu_fingerprint(run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "lr": config["lr"] * 3}))
    assert replay.replay_fingerprint(run, tmp_path / "c")["worst"] > 1e-4
    monkeypatch.setattr(replay, "cpu_signature", lambda: "first-kind")
    assert replay.fingerprint_of(run) == run / replay.FINGERPRINT


@slow
@pytest.mark.parametrize("experiment, variant", [("classifier", ""), ("dcgan", ""), ("classifier", "strong")])
def test_replayed_prefix_matches_and_a_changed_recipe_does_not(experiment, variant, cifar_root, tmp_path):
    """The check behind tests/test_published.py: a run's first steps, replayed from its config.json,
    give its history again; a run whose numbers came from other code (here: another lr) does not. With a
    learning-rate schedule (strong: onecycle) the replay keeps the run's length, so the schedule's too."""
    train = {"classifier": train_classifier, "dcgan": train_dcgan}[experiment]
    run = train(make_config(experiment, "smoke", variant=variant, **fixture_overrides(cifar_root, tmp_path / "run")),
                progress=False)
    assert not (tmp_path / "replay" / run.name / "metrics.json").exists()
    diffs = replay.replay_prefix(run, 8, tmp_path / "replay")
    assert diffs.pop("history").is_file() and diffs.pop("rows") == 2 and max(diffs.values()) == 0
    assert not (tmp_path / "replay" / run.name / "metrics.json").exists()   # stopped early: unfinished
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "lr": config["lr"] * 3}))
    assert replay.replay_prefix(run, 8, tmp_path / "other")["worst"] > 1e-4
    with pytest.raises(ValueError, match="logged step"):
        replay.replay_prefix(run, 6, tmp_path / "odd")


@slow
def test_a_gpu_made_run_replays_against_its_recorded_cpu_prefix(cifar_root, tmp_path):
    """A run made on a GPU differs from its CPU replay by amplified rounding; record_cpu_prefix keeps the
    CPU replay of its first steps in the run, and later replays are checked against that, exactly."""
    run = train_dcgan(make_config("dcgan", "smoke", **fixture_overrides(cifar_root, tmp_path / "run")), progress=False)
    hist = (run / "history.csv").read_text().splitlines()
    (run / "history.csv").write_text("\n".join(hist[:1] + [l.replace(",", ",1", 1) for l in hist[1:]]) + "\n")
    assert replay.record_cpu_prefix(run, 8) == run / replay.CPU_PREFIX   # the "GPU" history above: loss_D off by 10
    diffs = replay.replay_prefix(run, 8, tmp_path / "replay")
    assert diffs.pop("history").is_file() and diffs.pop("rows") == 2 and max(diffs.values()) == 0
    assert not (tmp_path / "replay" / run.name / "metrics.json").exists()   # stopped early: unfinished
    assert replay.replay_prefix(run, 8, tmp_path / "vs_gpu", reference="history.csv")["loss_D"] > 0.5


def test_the_full_check_ends_on_the_first_history_row_after_the_prefix(tmp_path):
    run = tmp_path / "classifier-paper-strong_stem-seed0"
    run.mkdir()
    for every, expected in ((250, 250), (1000, 1000), (100, 300), (40, 280)):
        results.write_csv(run / "history.csv", [{"step": s} for s in range(every, 3001, every)])
        assert replay.prefix_steps(run) == expected
