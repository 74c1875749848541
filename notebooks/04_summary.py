# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Summary: every headline number, paper against this run
#
# Read from the results folders that the previous pages wrote (`metrics.json`, `provenance.json`),
# with the profile, hardware, wall times, package versions and commit behind them.

# %% tags=["parameters", "remove-cell"]
profile = "quick"
seed = 0
data = None
verify = True
out = "results"
device = "auto"
retrain = False
train = True
variant = ""

# %% tags=["remove-input"]
import json
from pathlib import Path

import pandas as pd
from IPython.display import display
from myst_nb import glue

from effcifar import report

P = report.setup(globals())
PAPER = report.PAPER


def load(run_name):
    d = Path(P.out) / run_name
    return json.loads((d / "metrics.json").read_text()), json.loads((d / "provenance.json").read_text())


clf_cfg, gan_cfg = P.run_config("classifier"), P.run_config("dcgan")   # the runs the pages before showed
fid_cfg = P.config("fid", gan_cfg.profile)
clf, clf_prov = load(clf_cfg.run_name)
gan, gan_prov = load(gan_cfg.run_name)
fid, fid_prov = load(fid_cfg.run_name)
floor_dir = Path(P.out) / P.config("fid").floor_run_name
floor, floor_prov = load(floor_dir.name) if (floor_dir / "metrics.json").is_file() else (None, None)  # 03 says why

# %% tags=["remove-input"]
rows = [
    ("classifier", "parameters", f"{PAPER['classifier_params']:,}", f"{clf['params']:,}"),
    ("classifier", "optimisation steps", f"{PAPER['classifier_steps']:,}", f"{clf['steps']:,}"),
    ("classifier", "training accuracy (%)", f"{PAPER['train_acc']} ± {PAPER['train_acc_std']}",
     f"{100 * clf['train_acc']:.1f} ± {100 * clf['train_acc_std']:.1f}"),
    ("classifier", "test accuracy (%)", f"{PAPER['test_acc']} ± {PAPER['test_acc_std']}",
     f"{100 * clf['test_acc']:.1f} ± {100 * clf['test_acc_std']:.1f}"),
    ("classifier", "final training loss", f"{PAPER['final_train_loss']}", f"{clf['final_train_loss']:.3f}"),
    ("DCGAN", "generator parameters", f"{PAPER['params_G']:,}", f"{gan['params_G']:,}"),
    ("DCGAN", "discriminator parameters", f"{PAPER['params_D']:,}", f"{gan['params_D']:,}"),
    ("DCGAN", "optimisation steps", f"{PAPER['dcgan_steps']:,}", f"{gan['steps']:,}"),
    *[("DCGAN", f"FID at step {step:,}", f"{PAPER['fid']}" if step == PAPER["fid_step"] else "not given",
       f"{fid['fid'][str(step)]:.2f}" if str(step) in fid["fid"] else "not scored") for step in (46_000, 50_000)],
    ("DCGAN", "FID (best snapshot)", f"{PAPER['fid']}", f"{fid['best_fid']:.2f}"),
    ("DCGAN", "snapshot scored best (step)", f"{PAPER['fid_step']:,}", f"{fid['best_step']:,}"),
    ("DCGAN", "generated images for FID", f"{PAPER['fid_samples']:,}", f"{fid['n_samples']:,}"),
    ("DCGAN", f"FID floor: {fid['n_samples']:,} training vs {fid['n_reference']:,} test images", "not given",
     f"{fid['floor']:.2f}"),
    *([("FID floor", f"{floor['n_train_images']:,} training vs {floor['n_reference']:,} test images",
        "not given", f"{floor['fid']:.2f}")] if floor and floor["n_train_images"] != fid["n_samples"] else []),
]
headline = pd.DataFrame([(part, q, paper, ours, {"classifier": clf_cfg, "DCGAN": gan_cfg}.get(part, P).profile)
                         for part, q, paper, ours in rows],
                        columns=["part", "quantity", "paper", "this build", "profile"])
profile_text = P.profile if gan_cfg.profile == clf_cfg.profile == P.profile else \
    (f"{P.profile} (the classifier: {clf_cfg.profile}; the DCGAN: {gan_cfg.profile}, standing in until its "
     f"{P.profile} run is published)")
for k, v in {"sum_test_acc": 100 * clf["test_acc"], "sum_train_acc": 100 * clf["train_acc"],
             "sum_final_loss": clf["final_train_loss"], "sum_clf_params": clf["params"],
             "sum_clf_steps": clf["steps"], "sum_gan_steps": gan["steps"], "sum_fid": fid["best_fid"],
             "sum_fid_step": fid["best_step"], "sum_fid_samples": fid["n_samples"],
             "sum_profile": profile_text, "sum_dataset": clf["dataset"], "sum_inception": fid["inception"],
             "sum_floor": fid["floor"]}.items():
    glue(k, v, display=False)
report.table(headline)

# %% [markdown]
# ## Provenance

# %% tags=["remove-input"]
prov = pd.DataFrame([
    {"run": name, "profile": p["profile"], "seed": p["seed"], "device": p["device"],
     "wall time (s)": p["wall_seconds"], "commit": p["git_commit"][:12]}
    for name, p in (("classifier", clf_prov), ("DCGAN", gan_prov), ("FID", fid_prov), ("FID floor", floor_prov))
    if p])
glue("sum_device", clf_prov["device"], display=False)
glue("sum_commit", clf_prov["git_commit"][:12], display=False)
total = sum(p["wall_seconds"] for p in (clf_prov, gan_prov, fid_prov, floor_prov) if p)
glue("sum_wall_min", total / 60, display=False)
display(report.table(prov))
versions = pd.DataFrame(sorted(clf_prov["versions"].items()), columns=["package", "version"])
report.table(versions)

# %% [markdown]
# ## Run times of the other profiles, estimated from this run
# Seconds per optimisation step as measured above, on the device each run used (see Provenance), times
# each profile's step count (evaluation, FID and notebook overheads not included).

# %% tags=["remove-input"]
est = []
for prof in ("smoke", "quick", "paper"):
    c, g = report.make_config("classifier", prof), report.make_config("dcgan", prof)
    est.append({"profile": prof, "classifier steps": c.steps, "DCGAN steps": g.steps,
                f"classifier (min, {clf_prov['device']})":
                     round(c.steps * (clf["seconds_per_step"] or float("nan")) / 60, 1),
                f"DCGAN (min, {gan_prov['device']})": round(g.steps * (gan["seconds_per_step"] or float("nan")) / 60,
                                                            1)})
glue("sum_clf_sps", clf["seconds_per_step"] or float("nan"), display=False)
glue("sum_gan_sps", gan["seconds_per_step"] or float("nan"), display=False)
report.table(pd.DataFrame(est))

# %% [markdown]
# ## Verdicts
# Stated criteria, applied by code: the classifier reproduces if its test accuracy is at least the
# paper's minus 2 percentage points; FID reproduces if it is at most 10 % above the paper's 46.85. Each
# verdict also says whether the difference lies inside the paper's own ± spread. Only a `paper` profile
# run on CIFAR-100 (with pytorch-fid's weights, for FID) can test a claim.

# %% tags=["remove-input"]
acc = 100 * clf["test_acc"]
if clf_cfg.profile == "paper" and clf["dataset"] == "CIFAR-100":
    ok = acc >= PAPER["test_acc"] - 2
    inside = abs(acc - PAPER["test_acc"]) <= PAPER["test_acc_std"]
    verdict_clf = (f"{'reproduced' if ok else 'not reproduced'}: {acc:.1f} % test accuracy with "
                   f"{clf['params']:,} parameters, against the paper's {PAPER['test_acc']} % with "
                   f"{PAPER['classifier_params']:,}; the difference, {acc - PAPER['test_acc']:+.1f} points, is "
                   f"{'inside' if inside else 'outside'} the paper's ± {PAPER['test_acc_std']}. "
                   "Our test accuracy (%) " + report.against_seeds(PAPER["test_acc"], [
                       100 * m["test_acc"] for m in P.seed_metrics("classifier", clf_cfg.profile).values()]) + ".")
else:
    verdict_clf = (f"not tested by this build: the {clf_cfg.profile} profile trained {clf['steps']:,} steps on "
                   f"{clf['dataset']} (test accuracy {acc:.1f} %); the paper profile on CIFAR-100 tests it.")
same = (gan["params_G"], gan["params_D"]) == (PAPER["params_G"], PAPER["params_D"])
verdict_params = (f"{'reproduced exactly' if same else 'not reproduced'}: generator {gan['params_G']:,}, "
                  f"discriminator {gan['params_D']:,}, total {gan['params_G'] + gan['params_D']:,} "
                  f"(paper: {PAPER['params_total']:,}).")
if gan_cfg.profile == "paper" and gan["dataset"] == "CIFAR-100" and fid["inception"] == "pytorch-fid" \
        and fid["n_samples"] == PAPER["fid_samples"]:
    ok = fid["best_fid"] <= 1.1 * PAPER["fid"]
    at46 = fid["fid"].get(str(PAPER["fid_step"]))
    verdict_fid = (f"{'reproduced' if ok else 'not reproduced'}: FID {fid['best_fid']:.2f} at step "
                   f"{fid['best_step']:,} (the best scored snapshot)"
                   + (f" and {at46:.2f} at the paper's {PAPER['fid_step']:,}" if at46 is not None else "")
                   + f", against the paper's {PAPER['fid']} at {PAPER['fid_step']:,}; the floor for these sample "
                   f"sizes (training against test images) is {fid['floor']:.2f}. Our FID at "
                   f"{PAPER['fid_step']:,} steps " + report.against_seeds(PAPER["fid"], [
                       m["fid"][str(PAPER["fid_step"])] for m in P.seed_metrics("fid", gan_cfg.profile).values()])
                   + ".")
else:
    verdict_fid = (f"not tested by this build: FID {fid['best_fid']:.2f} from {fid['n_samples']:,} samples "
                   f"of a {gan['steps']:,}-step DCGAN with {fid['inception']} Inception weights is not "
                   f"comparable with the paper's {PAPER['fid']}.")
for k, v in (("verdict_clf", verdict_clf), ("verdict_params", verdict_params), ("verdict_fid", verdict_fid)):
    glue(k, v, display=False)
    print(f"{k}: {v}")
