"""Screenshots of the built book (introduction and each results page) in headless Chromium.

    python scripts/screenshots.py [--html _build/html] [--out _build/screenshots] [--height 2400]

Needs Debian's `chromium` (apt-get install chromium). Prints one line per PNG written.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PAGES = ["book/intro", "book/generated/01_data", "book/generated/02_classifier", "book/generated/03_dcgan",
         "book/generated/04_summary", "book/reproducibility"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--html", default="_build/html")
    ap.add_argument("--out", default="_build/screenshots")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    args = ap.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("error: chromium not found; install it with: apt-get install chromium", file=sys.stderr)
        return 2
    html, out = Path(args.html).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    missing = [p for p in PAGES if not (html / f"{p}.html").is_file()]
    if missing:
        print(f"error: {html} lacks {missing}; build the book first (python -m effcifar reproduce)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as profile_dir:
        for page in PAGES:
            png = out / f"{page.rsplit('/', 1)[1]}.png"
            subprocess.run([browser, *FLAGS, f"--user-data-dir={profile_dir}",
                            f"--window-size={args.width},{args.height}", f"--screenshot={png.resolve()}",
                            (html / f"{page}.html").as_uri()], check=True, capture_output=True, timeout=120)
            print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
