"""Screenshots of the built book (introduction and each results page) in headless Chromium.

    python scripts/screenshots.py [--html _build/html] [--out _build/screenshots] [--height 2400]

Needs Debian's `chromium` (apt-get install chromium). Prints one line per PNG written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effcifar.book import screenshots  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--html", default="_build/html")
    ap.add_argument("--out", default="_build/screenshots")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    args = ap.parse_args(argv)
    try:
        for png in screenshots(args.html, args.out, args.width, args.height):
            print(png)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
