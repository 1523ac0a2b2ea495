"""The sign-in gate in app.py under AppTest: no page runs until the visitor may see it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from dashboard.resources import _open_store
from tests.app.pages import APP, run, texts

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-long-random-test-cookie-secret",
    "client_id": "mgi-dashboard",
    "client_secret": "test-client-secret",
    "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration",
}
DATA_PAGE = "No datasets yet"  # the Data page's empty state: proof that the page ran


@pytest.fixture(autouse=True)
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh database file for the app (via $MGI_DB); the cached store is released after."""
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    monkeypatch.delenv("MGI_ALLOWED_EMAILS", raising=False)
    monkeypatch.delenv("MGI_ALLOWED_DOMAINS", raising=False)
    yield path
    _open_store(str(path)).close()
    _open_store.clear()


@pytest.fixture
def network_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """``server.address`` reads 0.0.0.0 (every interface), as with ``make run ADDRESS=0.0.0.0``."""
    get_option = streamlit.get_option
    monkeypatch.setattr(streamlit, "get_option",
                        lambda name: "0.0.0.0" if name == "server.address" else get_option(name))


def _app(secrets: dict[str, Any] | None = None, user: dict[str, Any] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    if user is not None:
        at.user = user
    return at


def _buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button] + [b.label for b in at.sidebar.button]


def _page_ran(at: AppTest) -> bool:
    return DATA_PAGE in texts(at.info) or "Data" in texts(at.title)


def test_without_auth_the_data_page_renders_as_before() -> None:
    at = run(_app())
    assert DATA_PAGE in texts(at.info)
    assert "Sign in" not in _buttons(at) and "Sign out" not in _buttons(at)
    assert not at.warning  # 127.0.0.1 from .streamlit/config.toml: no network banner


def test_with_auth_an_anonymous_visitor_sees_only_the_sign_in_screen() -> None:
    at = run(_app({"auth": AUTH}, user={"is_logged_in": False}))
    assert [b.label for b in at.button] == ["Sign in"]
    assert "Sign in" in texts(at.title)
    assert not _page_ran(at)
    assert not at.sidebar.button  # no navigation, no sign-out


def test_apptest_default_user_without_login_flag_is_anonymous() -> None:
    # AppTest's default st.user is {"email": "test@example.com"}: an e-mail but no sign-in.
    at = run(_app({"auth": AUTH}))
    assert "Sign in" in _buttons(at)
    assert not _page_ran(at)


def test_named_providers_get_one_button_each() -> None:
    shared = {k: AUTH[k] for k in ("redirect_uri", "cookie_secret")}
    provider = {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}
    auth = {**shared, "google": dict(provider), "microsoft": dict(provider)}
    at = run(_app({"auth": auth}, user={"is_logged_in": False}))
    assert [b.label for b in at.button] == ["Sign in with Google", "Sign in with Microsoft"]
    assert not _page_ran(at)


@pytest.mark.parametrize("auth", [
    {},                                                              # an empty [auth]
    {k: AUTH[k] for k in ("redirect_uri", "cookie_secret")},         # no provider
    {k: v for k, v in AUTH.items() if k != "client_secret"},         # half a provider
    {k: v for k, v in AUTH.items() if k != "cookie_secret"},         # no cookie secret
])
def test_half_configured_auth_stops_with_a_configuration_error(auth: dict[str, Any]) -> None:
    at = run(_app({"auth": auth}, user={"is_logged_in": True, "email": "a@b.c"}))
    assert "Sign-in is not configured correctly" in texts(at.error)
    assert not _page_ran(at)
    assert not _buttons(at)


def test_allow_list_without_auth_stops_instead_of_opening() -> None:
    at = run(_app({"mgi": {"allowed_domains": ["example.com"]}}))
    assert "[auth]" in texts(at.error)
    assert not _page_ran(at)


def test_signed_in_and_allowed_sees_the_page_and_a_sign_out_button() -> None:
    secrets = {"auth": AUTH, "mgi": {"allowed_domains": ["example.com"]}}
    at = run(_app(secrets, user={"is_logged_in": True, "email": "Alice@Example.com"}))
    assert DATA_PAGE in texts(at.info)
    assert [b.label for b in at.sidebar.button] == ["Sign out"]
    assert "Alice@Example.com" in texts(at.sidebar.caption)


def test_signed_in_without_allow_lists_sees_the_page() -> None:
    at = run(_app({"auth": AUTH}, user={"is_logged_in": True, "email": "anyone@anywhere.org"}))
    assert DATA_PAGE in texts(at.info)


def test_signed_in_but_not_on_the_allow_list_is_denied() -> None:
    secrets = {"auth": AUTH, "mgi": {"allowed_domains": ["example.com"],
                                     "allowed_emails": ["guest@partner.org"]}}
    at = run(_app(secrets, user={"is_logged_in": True, "email": "eve@evil-example.com"}))
    assert "Access denied" in texts(at.error)
    assert "eve@evil-example.com" in texts(at.error)
    assert [b.label for b in at.button] == ["Sign out"]
    assert not _page_ran(at)


def test_sign_out_returns_to_the_sign_in_screen() -> None:
    at = run(_app({"auth": AUTH}, user={"is_logged_in": True, "email": "a@example.com"}))
    assert DATA_PAGE in texts(at.info)
    at.sidebar.button[0].click()
    at = run(at)
    assert "Sign in" in _buttons(at)
    assert not _page_ran(at)


@pytest.mark.usefixtures("network_address")
def test_network_address_without_auth_shows_a_warning_banner() -> None:
    at = run(_app())
    banner = texts(at.warning)
    assert "reachable on the network" in banner and "0.0.0.0" in banner
    assert "[auth]" in banner and "127.0.0.1" in banner  # how to fix it
    assert DATA_PAGE in texts(at.info)  # a warning, not a gate


@pytest.mark.usefixtures("network_address")
def test_network_address_with_auth_shows_no_banner() -> None:
    at = run(_app({"auth": AUTH}, user={"is_logged_in": False}))
    assert not at.warning
    assert "Sign in" in _buttons(at)
