"""Screenshot of a signals page (README's picture), in Debian's headless Chromium via Playwright.

python benchmarks/signals_screenshot.py OUT/signals.html docs/signals.png [--drug methotrexate]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("page", type=Path, help="a signals.html written by predict.py signals")
    parser.add_argument("png", type=Path, help="screenshot to write")
    parser.add_argument(
        "--drug", default=None, help="drug whose chart is shown (default: the first in the list)"
    )
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(args.page.resolve().as_uri())
        drug = args.drug or page.locator("#drug option").nth(1).get_attribute("value")
        page.select_option("#drug", drug)
        page.screenshot(path=str(args.png), full_page=False)
        browser.close()
    print(f"{args.png} ({drug})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
