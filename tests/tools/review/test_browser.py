"""The review page in headless Chromium (Debian's chromium, driven by Playwright) against the seeded stack:
the queue, a correction saved with its review block, the MNS message, a second reviewer refused, a replaced
image, keyboard-only review, and a screenshot of the review screen."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from permit_ocr_local.tools.review import rules
from permit_ocr_local.tools.review.server import start

from .conftest import SPAN_FIXED, SPAN_READ, Seeded

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# CI sets PERMIT_OCR_REQUIRE_BROWSER=1: there a missing chromium fails these tests instead of skipping them
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("PERMIT_OCR_REQUIRE_BROWSER"),
                                reason="no chromium on this machine (.ci/run installs Debian's chromium)")
# what works on a closed network: nothing phones home, no GPU, no sandbox (root in CI)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Playwright gives each launch an empty temporary profile (its own --user-data-dir)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def site(seeded: Seeded) -> Iterator[str]:
    server, thread, url = start(seeded.store())
    yield url
    server.shutdown()
    thread.join(10)


def _page(browser: Any, errors: list[str] | None = None) -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(15000)
    if errors is not None:  # CSP violations and script errors land in the console
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def _sign_in(page: Any, url: str, name: str) -> None:
    page.goto(url)
    page.fill("#reviewer", name)
    page.click("button[type=submit]")
    page.wait_for_selector("#total")
    page.wait_for_load_state("load")  # the whole page parsed and review.js run, not only its first rows


def _open(page: Any, url: str, key: str) -> None:
    page.goto(f"{url}item?key={key}")
    page.wait_for_selector("#review-form")
    page.wait_for_load_state("load")


def test_queue_lists_the_flagged_results_with_counts(browser: Any, site: str, seeded: Seeded) -> None:
    page = _page(browser)
    _sign_in(page, site, "Chen")
    assert page.inner_text("#total") == "2"
    rows = page.locator("#queue tbody tr")
    assert rows.count() == 2
    assert seeded.result_key("span") in rows.nth(0).inner_text()  # oldest first
    when = rules.local_time(seeded.result("span")["processedAt"])
    assert rows.nth(0).locator("td").nth(0).inner_text() == when  # local time
    assert "有效期限与年龄不符 valid period vs. age" in rows.nth(0).inner_text()  # reasons in words
    assert seeded.result_key("clean") not in page.inner_text("#queue")
    from playwright.sync_api import expect

    page.click('a[data-check="number.format"]')
    expect(page.locator("#queue tbody tr")).to_have_count(1)  # retried: the filtered page may still be loading
    assert seeded.result_key("number") in page.inner_text("#queue")


def test_corrected_field_is_saved_with_review_block_and_message(browser: Any, site: str, seeded: Seeded,
                                                                tmp_path: Path) -> None:
    errors: list[str] = []
    page = _page(browser, errors)
    _sign_in(page, site, "Chen")
    _open(page, site, seeded.result_key("span"))
    failed = page.inner_text("#failed")  # in words, not "validPeriod.span"
    assert "有效期限与年龄不符" in failed and "does not fit the holder's age" in failed
    assert "validPeriod.span" not in failed and "valueProb" not in failed
    label = page.inner_text('label[for="f-validPeriod"]')  # Chinese, English, and the JSON name
    assert "有效期限" in label and "Valid period" in label and "validPeriod" in label
    assert page.get_by_label("validPeriod").get_attribute("id") == "f-validPeriod"  # the accessible name has it
    assert page.locator("polygon.box").count() >= 9  # each field with a position has its box
    assert page.evaluate("document.activeElement.id") == "f-validPeriod"  # the flagged field has the focus
    page.wait_for_function("() => { const i = document.querySelector('svg image');"
                           " return i && i.getBBox().width > 0; }")
    shot = tmp_path / "review-screen.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("REVIEW_SCREENSHOT"):  # how docs/review-screen.png is refreshed
        shutil.copy(shot, os.environ["REVIEW_SCREENSHOT"])

    page.fill("#f-validPeriod", SPAN_FIXED)
    page.click("#approve")
    page.wait_for_selector("p.note")
    assert "saved with 1 correction(s)" in page.inner_text("main")
    assert "result-reviewed message published" in page.inner_text("main")
    doc = seeded.result("span")
    assert doc["review"]["reviewer"] == "Chen" and doc["needsReview"] is False
    assert doc["review"]["changes"] == [{"field": "validPeriod", "before": SPAN_READ,
                                         "after": SPAN_FIXED}]
    assert next(c for c in doc["checks"] if c["code"] == "validPeriod.span")["passed"] is True
    messages = seeded.reviewed_messages()
    assert len(messages) == 1 and '"reviewer":"Chen"' in messages[0].body
    _open(page, site, seeded.result_key("span"))  # the saved result: its corrected field has no OCR confidence
    assert page.inner_text('#f-validPeriod ~ .conf') == "已更正 corrected"
    assert page.inner_text('#f-nameCn ~ .conf').endswith("%")  # approved as read: the OCR's confidence stays
    assert errors == []  # no CSP violation, no script error


def test_second_reviewer_of_the_same_result_is_refused(browser: Any, site: str, seeded: Seeded) -> None:
    alice, bob = _page(browser), _page(browser)
    _sign_in(alice, site, "Alice")
    _sign_in(bob, site, "Bob")
    _open(alice, site, seeded.result_key("number"))
    _open(bob, site, seeded.result_key("number"))
    alice.fill("#f-permitNumber", "H10387871")
    alice.click("#approve")
    alice.wait_for_selector("p.note")
    bob.fill("#f-permitNumber", "H99999999")
    bob.click("#approve")
    bob.wait_for_selector("#refused")
    refused = bob.inner_text("#refused")
    assert "Alice saved this result first" in refused
    saved_at = rules.local_time(seeded.result("number")["review"]["reviewedAt"])
    assert f"(at {saved_at})" in refused and "Z)" not in refused  # the reviewer's local time, not UTC
    assert bob.locator("#approve").count() == 0  # nothing left to approve on this result
    assert seeded.result("number")["data"]["data"]["permitNumber"] == "H10387871"
    assert len(seeded.reviewed_messages()) == 1


def test_replaced_image_says_the_function_will_produce_a_new_result(browser: Any, site: str,
                                                                    seeded: Seeded) -> None:
    from support import permit_image

    page = _page(browser)
    _sign_in(page, site, "Chen")
    seeded.bucket.put(seeded.uploads["span"].key, permit_image(size=(930, 626)))
    _open(page, site, seeded.result_key("span"))
    assert "The function will produce a new result" in page.inner_text("#stale")
    assert page.locator("#approve").count() == 0


def _focus_lands_on(page: Any, element_id: str) -> None:
    page.wait_for_function(f"() => document.activeElement && document.activeElement.id === {element_id!r}")


def test_keyboard_only_review(browser: Any, site: str, seeded: Seeded) -> None:
    page = _page(browser)
    page.goto(site)
    _focus_lands_on(page, "reviewer")  # autofocus is applied after load, as a person sees the cursor appear
    page.keyboard.type("Kim")
    page.keyboard.press("Enter")
    page.wait_for_selector("#total")
    _focus_lands_on(page, "begin")  # "review the oldest"
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-form")
    page.wait_for_load_state("load")  # Esc is handled by the deferred review.js: a key pressed before it ran is lost
    first = page.input_value('input[name="key"]')
    assert first == seeded.result_key("span")
    page.keyboard.press("Escape")  # skip
    page.wait_for_function(f"() => document.querySelector('input[name=key]').value !== {first!r}")
    assert page.input_value('input[name="key"]') == seeded.result_key("number")
    _focus_lands_on(page, "f-permitNumber")  # the first flagged field
    page.keyboard.press("Control+A")
    page.keyboard.type("H10387871")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-issueCount"  # Tab moves to the next field
    page.keyboard.press("Enter")  # approve
    page.wait_for_selector("p.note")
    doc = seeded.result("number")
    assert doc["review"]["reviewer"] == "Kim" and doc["data"]["data"]["permitNumber"] == "H10387871"
    assert seeded.result("span")["needsReview"] is True  # the skipped one waits in the queue


