"""`make run` as a user meets it: the health endpoint answers and the Data page shows the demo."""

from __future__ import annotations

import urllib.request

import pytest

from tests.e2e.conftest import SCREENSHOTS, assert_no_exception, wait_idle

pytestmark = pytest.mark.e2e


def test_health_endpoint(demo_server) -> None:
    with urllib.request.urlopen(f"{demo_server.url}/_stcore/health", timeout=10) as r:
        assert r.read().decode() == "ok"


def test_data_page_lists_the_demo_dataset(demo_server, page) -> None:
    page.goto(demo_server.url)
    wait_idle(page)
    assert_no_exception(page)
    # The overview picks the newest dataset: the demo, with its review count as a metric.
    picker = page.get_by_role("combobox", name="Dataset")
    assert picker.input_value() == "demo"
    metrics = page.locator("[data-testid='stMetric']").all_inner_texts()
    assert any("3,535" in m for m in metrics), metrics
    page.screenshot(path=str(SCREENSHOTS / "data_page.png"), full_page=True)
