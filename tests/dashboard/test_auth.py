"""The sign-in gate's decisions, without Streamlit: which [auth] sections count, who may enter."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.auth import (
    allow_lists,
    auth_configured,
    auth_problems,
    gate_decision,
    gate_problems,
    is_loopback,
    login_providers,
)

SHARED = {"redirect_uri": "https://mgi.example.com/oauth2callback", "cookie_secret": "s" * 32}
PROVIDER = {
    "client_id": "mgi",
    "client_secret": "shh",
    "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration",
}


def _secrets(auth: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    return {**({"auth": auth} if auth is not None else {}), **sections}


# ----- which [auth] sections are complete -----------------------------------------------


def test_no_auth_section_is_not_configured_and_not_a_problem() -> None:
    assert not auth_configured({})
    assert not auth_configured({"other": {"key": "value"}})
    assert auth_problems({}) == []
    assert login_providers({}) == []


def test_default_provider_in_the_auth_section_is_configured() -> None:
    secrets = _secrets({**SHARED, **PROVIDER})
    assert auth_configured(secrets)
    assert auth_problems(secrets) == []
    assert login_providers(secrets) == [None]  # st.login() with no name


def test_named_providers_are_configured_and_listed() -> None:
    secrets = _secrets({**SHARED, "google": dict(PROVIDER), "okta": dict(PROVIDER)})
    assert auth_configured(secrets)
    assert login_providers(secrets) == ["google", "okta"]


def test_client_kwargs_is_not_a_provider() -> None:
    # [auth.client_kwargs] tunes the default provider; it is not a provider of its own.
    secrets = _secrets({**SHARED, **PROVIDER, "client_kwargs": {"prompt": "login"}})
    assert auth_configured(secrets)
    assert login_providers(secrets) == [None]


def test_empty_auth_section_is_a_problem_not_open() -> None:
    problems = auth_problems(_secrets({}))
    assert problems and "redirect_uri" in problems[0]
    assert not auth_configured(_secrets({}))


@pytest.mark.parametrize("missing", ["redirect_uri", "cookie_secret"])
def test_missing_shared_key_is_a_problem(missing: str) -> None:
    auth = {k: v for k, v in {**SHARED, **PROVIDER}.items() if k != missing}
    problems = auth_problems(_secrets(auth))
    assert any(missing in p for p in problems)
    assert not auth_configured(_secrets(auth))


@pytest.mark.parametrize("missing", ["client_id", "client_secret", "server_metadata_url"])
def test_half_a_default_provider_is_a_problem(missing: str) -> None:
    auth = {k: v for k, v in {**SHARED, **PROVIDER}.items() if k != missing}
    problems = auth_problems(_secrets(auth))
    assert any(missing in p for p in problems)
    assert not auth_configured(_secrets(auth))


def test_shared_keys_without_any_provider_are_a_problem() -> None:
    problems = auth_problems(_secrets(dict(SHARED)))
    assert any("client_id" in p for p in problems)
    assert not auth_configured(_secrets(dict(SHARED)))


def test_half_a_named_provider_is_a_problem_even_next_to_a_complete_one() -> None:
    auth = {**SHARED, "google": dict(PROVIDER), "okta": {"client_id": "x"}}
    problems = auth_problems(_secrets(auth))
    assert len(problems) == 1 and "[auth.okta]" in problems[0]
    assert "client_secret" in problems[0] and "server_metadata_url" in problems[0]
    assert not auth_configured(_secrets(auth))


def test_blank_values_count_as_missing() -> None:
    auth = {**SHARED, **PROVIDER, "client_secret": "  "}
    assert any("client_secret" in p for p in auth_problems(_secrets(auth)))


def test_provider_name_with_underscore_is_a_problem() -> None:
    # Streamlit cannot log in with a provider whose name has an underscore.
    auth = {**SHARED, "my_idp": dict(PROVIDER)}
    assert any("my_idp" in p and "underscore" in p for p in auth_problems(_secrets(auth)))


@pytest.mark.parametrize("uri", ["https://mgi.example.com/", "mgi.example.com/oauth2callback"])
def test_redirect_uri_must_be_an_absolute_oauth2callback_url(uri: str) -> None:
    auth = {**SHARED, **PROVIDER, "redirect_uri": uri}
    assert any("redirect_uri" in p for p in auth_problems(_secrets(auth)))


def test_auth_that_is_not_a_table_is_a_problem() -> None:
    assert auth_problems({"auth": "yes"})
    assert not auth_configured({"auth": "yes"})


# ----- allow-lists --------------------------------------------------------------------------


def test_allow_lists_come_from_secrets_and_environment_lower_cased() -> None:
    secrets = {"mgi": {"allowed_emails": ["Alice@Example.com"], "allowed_domains": ["Corp.COM"]}}
    environ = {"MGI_ALLOWED_EMAILS": " bob@example.org, ", "MGI_ALLOWED_DOMAINS": "@lab.org"}
    emails, domains = allow_lists(secrets, environ)
    assert emails == {"alice@example.com", "bob@example.org"}
    assert domains == {"corp.com", "lab.org"}  # a leading "@" is dropped


def test_no_allow_lists_are_empty() -> None:
    assert allow_lists({}, {}) == (frozenset(), frozenset())


def test_allow_list_written_as_one_string_is_split_on_commas() -> None:
    emails, domains = allow_lists({"mgi": {"allowed_domains": "a.com, b.com"}}, {})
    assert domains == {"a.com", "b.com"} and emails == frozenset()


def test_allow_list_without_auth_is_a_problem() -> None:
    # Restricting who may enter means nothing when nobody signs in: stop instead of opening.
    problems = gate_problems({"mgi": {"allowed_domains": ["example.com"]}}, {})
    assert problems and "[auth]" in problems[0]
    assert gate_problems({}, {"MGI_ALLOWED_EMAILS": "a@example.com"})


def test_malformed_allow_list_entries_are_problems() -> None:
    secrets = {"auth": {**SHARED, **PROVIDER},
               "mgi": {"allowed_emails": ["no-at-sign"], "allowed_domains": ["a@b.com", 3]}}
    problems = gate_problems(secrets, {})
    assert any("no-at-sign" in p for p in problems)
    assert any("a@b.com" in p for p in problems)
    assert any("3" in p for p in problems)


def test_complete_config_with_allow_lists_has_no_problems() -> None:
    secrets = {"auth": {**SHARED, **PROVIDER}, "mgi": {"allowed_domains": ["example.com"]}}
    assert gate_problems(secrets, {}) == []
    assert gate_problems({}, {}) == []


def test_gate_problems_include_the_auth_section() -> None:
    assert gate_problems(_secrets(dict(SHARED)), {})


# ----- the decision -------------------------------------------------------------------------

NONE: frozenset[str] = frozenset()


def test_without_auth_the_app_is_open_whoever_asks() -> None:
    assert gate_decision(False, False, None, NONE, NONE) == "open"
    assert gate_decision(False, True, "a@example.com", NONE, NONE) == "open"


def test_anonymous_visitor_must_sign_in() -> None:
    assert gate_decision(True, False, None, NONE, NONE) == "sign_in"
    # An e-mail without a sign-in (AppTest's default user) is still anonymous.
    assert gate_decision(True, False, "a@example.com", {"a@example.com"}, NONE) == "sign_in"


def test_signed_in_without_allow_lists_is_allowed() -> None:
    assert gate_decision(True, True, "anyone@anywhere.org", NONE, NONE) == "allowed"
    assert gate_decision(True, True, None, NONE, NONE) == "allowed"


def test_email_on_the_list_is_allowed_case_insensitively() -> None:
    emails = {"alice@example.com"}
    assert gate_decision(True, True, "Alice@EXAMPLE.com ", emails, NONE) == "allowed"
    assert gate_decision(True, True, "ALICE@example.com", {"Alice@Example.COM"}, NONE) == "allowed"
    assert gate_decision(True, True, "bob@example.com", emails, NONE) == "denied"


def test_domain_on_the_list_is_allowed_case_insensitively() -> None:
    domains = {"Example.com"}
    assert gate_decision(True, True, "bob@EXAMPLE.COM", NONE, domains) == "allowed"
    assert gate_decision(True, True, "bob@example.org", NONE, domains) == "denied"


@pytest.mark.parametrize("email", [
    "eve@evil-example.com",       # look-alike: ends with "example.com" but is another domain
    "eve@example.com.evil.org",   # the allowed domain as a prefix
    "eve@sub.example.com",        # subdomains are not the domain
    "example.com@evil.org",       # the domain in the local part
])
def test_domain_look_alikes_are_denied(email: str) -> None:
    assert gate_decision(True, True, email, NONE, {"example.com"}) == "denied"


def test_either_list_lets_a_user_in() -> None:
    emails, domains = {"guest@partner.org"}, {"example.com"}
    assert gate_decision(True, True, "guest@partner.org", emails, domains) == "allowed"
    assert gate_decision(True, True, "staff@example.com", emails, domains) == "allowed"
    assert gate_decision(True, True, "other@partner.org", emails, domains) == "denied"


@pytest.mark.parametrize("email", [None, "", "not-an-email"])
def test_missing_email_is_denied_when_lists_apply(email: str | None) -> None:
    assert gate_decision(True, True, email, NONE, {"example.com"}) == "denied"


def test_unverified_email_is_denied_when_lists_apply() -> None:
    args = (True, True, "bob@example.com", NONE, {"example.com"})
    assert gate_decision(*args, email_verified=False) == "denied"
    assert gate_decision(*args, email_verified=True) == "allowed"
    assert gate_decision(*args, email_verified=None) == "allowed"  # claim not sent: trust IdP


# ----- listen address -----------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1", "127.0.1.1", "LOCALHOST"])
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "192.168.1.20", "mgi.example.com"])
def test_network_addresses(address: str | None) -> None:
    # Streamlit listens on every interface when server.address is unset.
    assert not is_loopback(address)
