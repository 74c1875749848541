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
# # Part 1: the classifier
#
# The paper's network: ten residual blocks of depthwise-separable convolutions (eight of 42 channels,
# two of 128), global average pooling and one linear layer, trained with Adam and cross-entropy for
# 10,000 steps with random crops (padding 4) and horizontal flips. The paper reports 98,068 parameters,
# 68.1 ± 4.3 % training and 56.9 ± 4.6 % test accuracy, and a final training loss of 1.099.

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

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from effcifar import report
from effcifar.classifier import train_classifier
from effcifar.models import Classifier, classifier_macs, count_params, layer_table

P = report.setup(globals())
PAPER = report.PAPER

# %% [markdown]
# ## Architecture
# One row per residual block (and the head). Where the paper is silent we chose, as the methods page
# explains: the channel count changes in a block's second depthwise-separable convolution, with a
# 1x1-conv + BN projection shortcut; convolutions have no bias (BN follows each); blocks 5 and 9 halve
# the resolution.

# %% tags=["remove-input"]
model = Classifier()
table = pd.DataFrame(layer_table(model))
n_params = count_params(model)
glue("clf_params", n_params, display=False)
glue("clf_params_diff", PAPER["classifier_params"] - n_params, display=False)
glue("clf_macs_m", classifier_macs(model) / 1e6, display=False)
glue("clf_macs_ratio", classifier_macs(Classifier(downsample_blocks=())) / classifier_macs(model), display=False)
display(report.table(table))
report.table(pd.DataFrame({"": ["parameters"], "paper": [PAPER["classifier_params"]], "this model": [n_params],
                           "difference": [n_params - PAPER["classifier_params"]]}))

# %% [markdown]
# The paper's text does not determine its count: every reading we tried in which a block changes its
# width in its *first* convolution is over the 100,000 budget (105,913 even with parameter-free
# shortcuts), and none gives exactly 98,068. Our reading has {glue:text}`clf_params:,` parameters,
# {glue:text}`clf_params_diff:,` fewer than the paper's. `tests/test_models.py` asserts the exact count.

# %% [markdown]
# ## Training
# Training runs here, or a finished run of the same configuration in the results folder is reused
# (parameter `retrain=True` forces a new one).

# %%
cfg = P.run_config("classifier")   # with train=False, a finished run of a smaller profile may stand in
run = train_classifier(cfg, force=P.retrain, progress=False, reuse_only=not P.train)
hist = pd.read_csv(run / "history.csv")
metrics = json.loads((run / "metrics.json").read_text())
prov = json.loads((run / "provenance.json").read_text())
print(f"run folder: {P.shown(run)}\nsteps: {cfg.steps}, batch {cfg.batch_size}, Adam lr {cfg.lr}; "
      f"device: {prov['device']}; wall time {prov['wall_seconds']:.0f} s")

# %% [markdown]
# ## Figure 2: accuracy and loss against optimisation step
# Training figures are means over the steps since the previous evaluation (the band is ± one standard
# deviation of the per-batch accuracy, batches of 128 as in the paper); test figures are on the test
# images named in `history.csv` (`test_images`).
# See {numref}`fig-clf-curves`.

# %% tags=["remove-input"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
ax1.plot(hist.step, 100 * hist.train_acc, label="train (batch mean)")
ax1.fill_between(hist.step, 100 * (hist.train_acc - hist.train_acc_std), 100 * (hist.train_acc + hist.train_acc_std),
                 alpha=0.2)
ax1.plot(hist.step, 100 * hist.test_acc, label="test")
ax1.set(xlabel="optimisation step", ylabel="accuracy (%)", title="Accuracy")
ax1.legend()
ax2.plot(hist.step, hist.train_loss, label="train")
ax2.plot(hist.step, hist.test_loss, label="test")
ax2.set(xlabel="optimisation step", ylabel="cross-entropy", title="Loss")
ax2.legend()
fig.suptitle(f"Figure 2 (reproduced, profile {cfg.profile}): classifier training")
fig.tight_layout()
glue("fig2", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig2
# :name: fig-clf-curves
#
# The paper's Figure 2 for this run: accuracy and loss on the training batches and the test set
# against optimisation step.
# ```

# %% [markdown]
# ## Results against the paper
# Test accuracy is over the whole test set loaded, with ± the standard deviation over batches of 128.

# %% tags=["remove-input"]
rows = [
    ("parameters", f"{PAPER['classifier_params']:,}", f"{metrics['params']:,}"),
    ("optimisation steps", f"{PAPER['classifier_steps']:,}", f"{metrics['steps']:,}"),
    ("training accuracy (%)", f"{PAPER['train_acc']} ± {PAPER['train_acc_std']}",
     f"{100 * metrics['train_acc']:.1f} ± {100 * metrics['train_acc_std']:.1f}"),
    ("test accuracy (%)", f"{PAPER['test_acc']} ± {PAPER['test_acc_std']}",
     f"{100 * metrics['test_acc']:.1f} ± {100 * metrics['test_acc_std']:.1f}"),
    ("final training loss", f"{PAPER['final_train_loss']}", f"{metrics['final_train_loss']:.3f}"),
]
for key in ("test_acc", "train_acc", "test_acc_std", "train_acc_std"):
    glue(f"clf_{key}", 100 * metrics[key], display=False)
glue("clf_final_loss", metrics["final_train_loss"], display=False)
glue("clf_steps", metrics["steps"], display=False)
glue("clf_wall", prov["wall_seconds"], display=False)
report.table(pd.DataFrame(rows, columns=["quantity", "paper", f"this run ({cfg.profile})"]))

# %% [markdown]
# ## Where this run differs from the paper
# Each figure against the paper's, and whether the difference lies inside the paper's ± spread. That
# spread is the standard deviation of the accuracy of single batches of 128: it says how much one batch
# varies, and is a generous yardstick for a whole run, whose accuracy over 10,000 test images varies
# far less from batch noise alone.

# %% tags=["remove-input"]
def against_paper(name, ours, paper, spread):
    d = ours - paper
    where = "inside" if abs(d) <= spread else "outside"
    return f"{name}: {ours:.1f} % against the paper's {paper} % ({d:+.1f} points, {where} its ± {spread})"


lines = [against_paper("test accuracy", 100 * metrics["test_acc"], PAPER["test_acc"], PAPER["test_acc_std"]),
         against_paper("training accuracy", 100 * metrics["train_acc"], PAPER["train_acc"], PAPER["train_acc_std"]),
         f"generalisation gap (training minus test accuracy): "
         f"{100 * (metrics['train_acc'] - metrics['test_acc']):.1f} points against the paper's "
         f"{PAPER['train_acc'] - PAPER['test_acc']:.1f}",
         f"final training loss: {metrics['final_train_loss']:.3f} against the paper's {PAPER['final_train_loss']}"]
display(Markdown("\n".join(f"- {line}." for line in lines)))

# %% [markdown]
# Where the paper is silent we had to choose (the methods page lists each choice), and each choice is a
# candidate cause of any difference: our network has fewer parameters than the paper's, and the paper
# names no learning rate, no input normalisation and no place where the resolution drops. These are
# hypotheses, not findings, until a run isolates each of them; the ablations that would do so (learning
# rate and schedule, where resolution drops, width) are planned for the "Beyond the paper" chapter.
