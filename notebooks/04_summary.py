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
import pandas as pd
from IPython.display import display
from myst_nb import glue

from effcifar import report, tables

P = report.setup(globals())
PAPER = report.PAPER
runs = tables.summary_runs(P)   # the runs the pages before showed
(clf_cfg, clf, clf_prov), (gan_cfg, gan, gan_prov), (fid_cfg, fid, fid_prov) = (
    runs["classifier"], runs["dcgan"], runs["fid"])
floor_prov = runs["floor"][2] if "floor" in runs else None

# %% tags=["remove-input"]
seeds = tables.seed_columns(P, runs)
headline = pd.DataFrame([(part, q, paper, ours, seeds.get(q, ""),
                          {"classifier": clf_cfg, "DCGAN": gan_cfg}.get(part, P).profile)
                         for part, q, paper, ours in tables.summary_rows(runs, PAPER)],
                        columns=["part", "quantity", "paper", f"this build (seed {P.seed})", "all published seeds",
                                 "profile"])
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
est = tables.run_time_estimates(clf, gan, clf_prov["device"], gan_prov["device"])
glue("sum_clf_sps", clf["seconds_per_step"] or float("nan"), display=False)
glue("sum_gan_sps", gan["seconds_per_step"] or float("nan"), display=False)
report.table(est)

# %% [markdown]
# ## Verdicts
# Stated criteria, applied by code to the mean over the published seeds (seed 0 alone where it is the only
# one): the classifier reproduces if its test accuracy is at least the paper's minus 2 percentage points;
# FID reproduces if it is at most 10 % above the paper's 46.85. Each verdict also says whether the
# difference lies inside the paper's own ± spread, and whether the paper's number lies inside our seeds'
# mean ± 2 std. Only a `paper` profile run on CIFAR-100 (with pytorch-fid's weights, for FID) can test a
# claim.

# %% tags=["remove-input"]
verdicts = tables.verdicts(P, runs, PAPER)
for k, v in verdicts.items():
    glue(k, v, display=False)
claims = {"verdict_clf": "classifier test accuracy", "verdict_params": "DCGAN parameter counts",
          "verdict_fid": "DCGAN FID"}
report.table(pd.DataFrame([(claims[k], *v.split(": ", 1)) for k, v in verdicts.items()],
                          columns=["claim", "verdict", "why"]))
