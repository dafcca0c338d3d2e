"""The page of `ulmfit serve`, driven in real headless Chromium through Playwright: type a text, read the result.

Needs Chromium (Debian's `chromium` package, or $CHROMIUM naming a binary) and the `playwright` package
(`pip install playwright`, the `[browser]` extra); .ci/run installs both. Where either is missing, the tests skip and say which.
"""
import os
import shutil
import threading

import pytest

from test_pipeline import runs  # noqa: F401  (the tiny run dirs, once per module)
from ulmfit.apps.serve import ServeConfig, close_server, make_server, url

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install playwright")
CHROMIUM = os.environ.get("CHROMIUM") or next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: apt install chromium")


@pytest.fixture(scope="module")
def page(runs):  # noqa: F811
    server = make_server(runs / "cls", ServeConfig(port=0, explain_steps=8, threads=1))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page()
        tab.goto(url(server))
        yield tab, server
        browser.close()
    server.shutdown()
    close_server(server)


def test_typing_a_text_shows_its_label_probabilities_and_coloured_tokens(page):
    """The label on the page is the API's; one bar per class; one coloured span per token, scored."""
    tab, server = page
    text = "alpha beta gamma delta"
    tab.fill("#text", text)
    tab.click("#go")
    tab.wait_for_selector("#result:not([hidden])", timeout=30_000)
    expected = server.service.predict([text], explain=True)
    assert tab.text_content("#label") == expected["predictions"][0]["label"]
    assert tab.locator(".bar-row").count() == len(server.service.labels)
    tokens = tab.locator("#tokens .token")
    assert tokens.count() == len(expected["attributions"][0]["tokens"])
    scores = [float(tokens.nth(i).get_attribute("data-score")) for i in range(tokens.count())]
    assert scores == pytest.approx(expected["attributions"][0]["scores"], abs=1e-4)
    assert "rgba(" in tokens.first.get_attribute("style")


def test_the_labels_come_from_health(page):
    tab, server = page
    tab.wait_for_function("document.getElementById('labels').textContent !== '…'", timeout=10_000)
    assert tab.text_content("#labels") == ", ".join(server.service.labels)


def test_an_empty_text_shows_an_error_instead_of_a_result(page):
    tab, _ = page
    tab.fill("#text", "   ")
    tab.click("#go")
    assert "Type a text first" in tab.text_content("#error")


def test_a_server_error_is_shown_on_the_page(page):
    """A text over the server's limit comes back as a 413, whose message the page shows."""
    tab, server = page
    tab.fill("#text", "x" * (server.service.config.max_chars + 1))
    tab.click("#go")
    tab.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=10_000)
    assert "the limit is" in tab.text_content("#error")
    assert tab.locator("#result").is_hidden()
