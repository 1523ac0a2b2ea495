"""Hostile uploads in a real browser: a clear error, no exception, and a column header written
as markdown is shown as text: the browser never fetches the image it names."""

from __future__ import annotations

import pytest

from dashboard.text import WORD_JOINER
from tests.e2e.conftest import SCREENSHOTS, assert_no_exception, wait_idle

pytestmark = pytest.mark.e2e

IMAGE = "http://127.0.0.1:9/track.png"  # nothing listens on port 9 (discard)


def _upload(pg, path) -> None:
    pg.get_by_role("region", name="Review file").get_by_test_id(
        "stFileUploaderDropzoneInput").set_input_files(str(path))
    wait_idle(pg)


def test_markdown_header_is_shown_as_text_and_never_fetched(demo_server, page,
                                                           tmp_path) -> None:
    from playwright.sync_api import expect

    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "127.0.0.1:9" in r.url else None)
    path = tmp_path / "hostile.csv"
    path.write_text(f"user_id,item_id,![x]({IMAGE}),rating\nu1,i1,hi,5\n")
    page.goto(demo_server.url)
    wait_idle(page)
    _upload(page, path)
    page.get_by_role("button", name="Ingest").click()
    wait_idle(page)
    assert_no_exception(page)
    alert = page.get_by_test_id("stAlertContentError")
    expect(alert).to_contain_text("Missing required column(s): text")
    # the header as written (an invisible word joiner keeps the URL from becoming a link)
    assert f"'![x]({IMAGE})'" in alert.inner_text().replace(WORD_JOINER, "")
    assert alert.locator("img, a").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "hostile_header.png"), full_page=True)
    assert fetched == []


def test_first_line_of_200_kb_is_a_clear_error(demo_server, page, tmp_path) -> None:
    from playwright.sync_api import expect

    path = tmp_path / "long.csv"
    path.write_text('"' + "a" * 200_000 + '",item_id,text,rating\nu1,i1,t,5\n')
    page.goto(demo_server.url)
    wait_idle(page)
    _upload(page, path)
    assert_no_exception(page)
    expect(page.get_by_test_id("stAlertContentError")).to_contain_text("longer than 64 KiB")
