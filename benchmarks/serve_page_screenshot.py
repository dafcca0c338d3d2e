"""A screenshot of `ulmfit serve`'s page with a real classifier, for the README (issue 17 §5).

Serves RUN_DIR on a free local port, opens the page in headless Chromium (Playwright), types each `--text`,
waits for the label, probabilities and coloured tokens, and saves one PNG per text (`--out`, then -2, -3 ...).
Prints what the page showed and where the screenshots went.

    python benchmarks/serve_page_screenshot.py RUN_DIR --out benchmarks/results/serve_page.png \
        --text "You Won't Believe What These 17 Cats Did Next"
"""
from __future__ import annotations

import argparse
import shutil
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ulmfit.apps.serve import ServeConfig, close_server, make_server, url  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--text", action="append", required=True, help="a text to type (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    parser.add_argument("--int8", action="store_true")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    server = make_server(args.run_dir, ServeConfig(port=0, int8=args.int8))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 820, "height": 560}, device_scale_factor=1)
            page.goto(url(server))
            for k, text in enumerate(args.text):
                page.fill("#text", text)
                page.click("#go")
                page.wait_for_function(f"document.getElementById('ig-label').textContent !== '' && "
                                       f"document.getElementById('tokens').children.length > 0 && "
                                       f"!document.getElementById('go').disabled", timeout=60_000)
                out = args.out if k == 0 else args.out.with_name(f"{args.out.stem}-{k + 1}{args.out.suffix}")
                page.screenshot(path=str(out), full_page=True)
                bars = " | ".join(page.locator(".bar-row").all_inner_texts()).replace("\n", " ")
                print(f"{text!r}: label {page.text_content('#label')}; {bars}; screenshot {out}")
            browser.close()
    finally:
        server.shutdown()
        close_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
