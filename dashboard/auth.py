"""Sign-in gate: who may see the dashboard, decided before any page runs.

Sign-in is Streamlit's own OIDC login (``st.login``), switched on by an ``[auth]`` section in
``.streamlit/secrets.toml``; an optional allow-list (``[mgi] allowed_emails`` /
``allowed_domains``, or ``$MGI_ALLOWED_EMAILS`` / ``$MGI_ALLOWED_DOMAINS``, comma-separated)
narrows who may enter. The decisions are pure functions over mappings (tested without
Streamlit); ``require_login`` only reads the settings, draws the screens and stops the run.

A half-configured ``[auth]`` never leaves the app open: it is a configuration error that stops
every run until it is fixed.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from collections.abc import Collection, Mapping
from typing import Any, Literal
from urllib.parse import urlparse

import streamlit as st

Decision = Literal["open", "sign_in", "denied", "allowed"]

SHARED_KEYS = ("redirect_uri", "cookie_secret")  # [auth], for every provider
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")  # per provider
NOT_PROVIDERS = frozenset({"client_kwargs"})  # tables in [auth] that tune the default provider
ENV_EMAILS, ENV_DOMAINS = "MGI_ALLOWED_EMAILS", "MGI_ALLOWED_DOMAINS"
FIX_HINT = "Fix `.streamlit/secrets.toml` (README: *Deploying for a team*) and reload the page."


# ----- settings (pure) ------------------------------------------------------------------------


def _filled(section: Mapping[str, Any], key: str) -> bool:
    value = section.get(key)
    return value is not None and str(value).strip() != ""


def _named_providers(auth: Mapping[str, Any]) -> list[str]:
    """Names of the ``[auth.NAME]`` tables, in file order."""
    return [k for k, v in auth.items() if isinstance(v, Mapping) and k not in NOT_PROVIDERS]


def _has_default_provider(auth: Mapping[str, Any]) -> bool:
    """Whether ``[auth]`` itself holds (some of) a provider's keys, for ``st.login()``."""
    return any(k in auth for k in PROVIDER_KEYS)


def _is_callback_url(uri: str) -> bool:
    parsed = urlparse(str(uri).strip())
    return (parsed.scheme in ("http", "https") and bool(parsed.netloc)
            and parsed.path.endswith("/oauth2callback"))


def auth_problems(secrets: Mapping[str, Any]) -> list[str]:
    """What keeps the ``[auth]`` section from working with ``st.login``.

    Args:
        secrets: ``st.secrets`` or any mapping of the same shape.

    Returns:
        One message per problem, each saying what to add or change; empty when there is no
        ``[auth]`` section (sign-in off) or when it is complete. An empty ``[auth]``, one
        without a complete provider, or a provider with a blank or missing key are problems.
    """
    if "auth" not in secrets:
        return []
    auth = secrets["auth"]
    if not isinstance(auth, Mapping):
        return ["`auth` must be a table (`[auth]`) with redirect_uri, cookie_secret and a "
                "provider's client_id, client_secret, server_metadata_url."]
    problems = []
    missing = [k for k in SHARED_KEYS if not _filled(auth, k)]
    if missing:
        problems.append(f"[auth] is missing {', '.join(missing)}.")
    elif not _is_callback_url(auth["redirect_uri"]):
        problems.append(f"[auth] redirect_uri must be the app's absolute URL ending in "
                        f"/oauth2callback (e.g. http://localhost:8501/oauth2callback), "
                        f"not {auth['redirect_uri']!r}.")
    named = _named_providers(auth)
    if _has_default_provider(auth) or not named:
        missing = [k for k in PROVIDER_KEYS if not _filled(auth, k)]
        if missing:
            problems.append(f"[auth] is missing {', '.join(missing)} (the identity provider's "
                            f"settings), or add a named provider as [auth.NAME].")
    for name in named:
        missing = [k for k in PROVIDER_KEYS if not _filled(auth[name], k)]
        if missing:
            problems.append(f"[auth.{name}] is missing {', '.join(missing)}.")
        if "_" in name:
            problems.append(f"[auth.{name}]: a provider name cannot contain an underscore "
                            f"(Streamlit cannot sign in with it); rename it, e.g. "
                            f"[auth.{name.replace('_', '')}].")
    return problems


def auth_configured(secrets: Mapping[str, Any]) -> bool:
    """True only when ``[auth]`` exists and has everything ``st.login`` needs."""
    return "auth" in secrets and not auth_problems(secrets)


def login_providers(secrets: Mapping[str, Any]) -> list[str | None]:
    """What to pass to ``st.login``: ``None`` for the provider in ``[auth]``, else the names.

    Empty when sign-in is not configured.
    """
    if not auth_configured(secrets):
        return []
    auth = secrets["auth"]
    default: list[str | None] = [None] if _has_default_provider(auth) else []
    return default + _named_providers(auth)


def _entries(value: Any) -> list[Any]:
    """An allow-list as written: a TOML array, or one comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _raw_allow_lists(
    secrets: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[list[Any], list[Any], list[str]]:
    section = secrets.get("mgi", {})
    problems = []
    if not isinstance(section, Mapping):
        problems.append("`mgi` must be a table (`[mgi]`) with allowed_emails / allowed_domains.")
        section = {}
    emails = _entries(section.get("allowed_emails")) + _entries(environ.get(ENV_EMAILS))
    domains = _entries(section.get("allowed_domains")) + _entries(environ.get(ENV_DOMAINS))
    return emails, domains, problems


def _email(entry: Any) -> str | None:
    if not isinstance(entry, str):
        return None
    email = entry.strip().lower()
    local, _, domain = email.rpartition("@")
    return email if local and domain and "@" not in local else None


def _domain(entry: Any) -> str | None:
    if not isinstance(entry, str):
        return None
    domain = entry.strip().lower().removeprefix("@")
    return domain if domain and "@" not in domain else None


def allow_lists(
    secrets: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[frozenset[str], frozenset[str]]:
    """The allowed e-mail addresses and domains, lower-cased, from secrets and environment.

    ``[mgi] allowed_emails`` / ``allowed_domains`` and ``$MGI_ALLOWED_EMAILS`` /
    ``$MGI_ALLOWED_DOMAINS`` (comma-separated) add up. A domain may be written ``@example.com``.
    Malformed entries are left out here and reported by ``gate_problems``.
    """
    raw_emails, raw_domains, _ = _raw_allow_lists(secrets, environ)
    emails = frozenset(e for e in map(_email, raw_emails) if e)
    domains = frozenset(d for d in map(_domain, raw_domains) if d)
    return emails, domains


def gate_problems(secrets: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Everything that must stop the app: ``auth_problems``, bad allow-list entries, and an
    allow-list without ``[auth]`` (restricting who enters means nothing when nobody signs in).
    """
    problems = auth_problems(secrets)
    raw_emails, raw_domains, section_problems = _raw_allow_lists(secrets, environ)
    problems += section_problems
    problems += [f"allowed_emails: {e!r} is not an e-mail address." for e in raw_emails
                 if _email(e) is None]
    problems += [f"allowed_domains: {d!r} is not a domain (e-mail addresses go in "
                 f"allowed_emails)." for d in raw_domains if _domain(d) is None]
    if (raw_emails or raw_domains) and "auth" not in secrets:
        problems.append("An allow-list is set ([mgi] or $MGI_ALLOWED_*) but sign-in is not: "
                        "add an [auth] section, or remove the allow-list to run without "
                        "sign-in.")
    return problems


# ----- decisions (pure) -----------------------------------------------------------------------


def gate_decision(
    auth_configured: bool,
    logged_in: bool,
    email: str | None,
    allowed_emails: Collection[str],
    allowed_domains: Collection[str],
    *,
    email_verified: bool | None = None,
) -> Decision:
    """Whether this visitor may see the pages.

    Args:
        auth_configured: ``auth_configured(secrets)``.
        logged_in: ``st.user.is_logged_in``.
        email: ``st.user.email`` (``None`` when the provider sent none).
        allowed_emails: addresses that may enter, any case; empty with ``allowed_domains``
            empty means every signed-in user may.
        allowed_domains: domains whose addresses may enter: exactly the part after the last
            ``@``, so ``example.com`` admits neither ``evil-example.com`` nor subdomains.
        email_verified: the ``email_verified`` claim; ``False`` is denied when a list applies
            (an unverified address proves nothing), ``None`` (not sent) is trusted.

    Returns:
        ``"open"`` (sign-in is off), ``"sign_in"`` (anonymous), ``"denied"`` (signed in, not on
        the allow-list) or ``"allowed"``.
    """
    if not auth_configured:
        return "open"
    if not logged_in:
        return "sign_in"
    if not allowed_emails and not allowed_domains:
        return "allowed"
    address = _email(email)
    if address is None or email_verified is False:
        return "denied"
    if address in {e.strip().lower() for e in allowed_emails}:
        return "allowed"
    domain = address.rpartition("@")[2]
    allowed = {d.strip().lower().removeprefix("@") for d in allowed_domains}
    return "allowed" if domain in allowed else "denied"


def is_loopback(address: str | None) -> bool:
    """Whether ``server.address`` keeps the server on this machine (unset means every
    interface, so it is not)."""
    if not address or not address.strip():
        return False
    host = address.strip().lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ----- the gate (Streamlit) -------------------------------------------------------------------


def _stop_with(problems: list[str]) -> None:
    lines = "\n".join(f"- {p}" for p in problems)
    st.error(f"**Sign-in is not configured correctly**, so the dashboard stays closed:\n\n"
             f"{lines}\n\n{FIX_HINT}", icon=":material/lock:")
    st.stop()


def _read_secrets() -> Mapping[str, Any]:
    """``st.secrets``, or ``{}`` when there is no secrets file; an unreadable one stops the run
    (a syntax error must not switch sign-in off)."""
    if st.secrets.load_if_toml_exists():
        return st.secrets
    paths = [os.path.expanduser(p) for p in st.get_option("secrets.files")]
    unreadable = [p for p in paths if os.path.exists(p)]
    if unreadable:
        _stop_with([f"{', '.join(unreadable)} could not be read: fix its TOML syntax "
                    f"(the server log says where)."])
    return {}


def _sign_in_screen(providers: list[str | None]) -> None:
    st.title("Sign in to MGI")
    st.write("This dashboard holds review data, user profiles and models, so it asks who you "
             "are first. Sign in with your organisation's account; you come back here after.")
    for provider in providers:
        label = "Sign in" if provider is None else f"Sign in with {provider.title()}"
        st.button(label, type="primary", icon=":material/login:", on_click=st.login,
                  args=(provider,), key=f"auth_sign_in_{provider or 'default'}")


def _denied_screen(email: str | None, unverified: bool) -> None:
    who = f"**{email}**" if email else "Your account (no e-mail address was sent)"
    why = ("has not been verified by your identity provider" if unverified and email
           else "is not on this dashboard's allow-list")
    st.title("MGI")
    st.error(f"Access denied: {who} {why}. Sign out and use another account, or ask the "
             f"dashboard's administrator to add you.", icon=":material/block:")
    st.button("Sign out", icon=":material/logout:", on_click=st.logout, key="auth_sign_out")


def require_login() -> None:
    """Let the run go on only when the visitor may see the pages; call before ``st.navigation``.

    - no ``[auth]``: the app is open; a warning banner says so when the server listens on a
      network address (not loopback);
    - complete ``[auth]``: anonymous visitors see the sign-in screen, signed-in users not on the
      allow-list see "access denied", the others get a "Sign out" button in the sidebar;
    - a half-configured ``[auth]`` (or an allow-list without it): a configuration error.

    Every screen but the last ends with ``st.stop()``.
    """
    secrets = _read_secrets()
    problems = gate_problems(secrets, os.environ)
    configured = auth_configured(secrets)
    if configured and not all(importlib.util.find_spec(m) for m in ("authlib", "httpx")):
        problems.append("Sign-in needs the Authlib and httpx packages: run `make setup` "
                        "(they are pinned in requirements.txt).")
    if problems:
        _stop_with(problems)
    if not configured:
        address = st.get_option("server.address")
        if not is_loopback(address):
            st.warning(f"This dashboard is **reachable on the network** (server.address = "
                       f"{address or 'every interface'}) and nobody has to sign in. Serve it "
                       f"on 127.0.0.1 (`make run` does by default) behind a reverse proxy with "
                       f"authentication, or configure sign-in with an [auth] section in "
                       f"`.streamlit/secrets.toml` (README: *Deploying for a team*).",
                       icon=":material/public:")
        return
    emails, domains = allow_lists(secrets, os.environ)
    email, verified = st.user.get("email"), st.user.get("email_verified")
    email = email if isinstance(email, str) else None
    verified = verified if isinstance(verified, bool) else None
    decision = gate_decision(True, st.user.get("is_logged_in") is True, email, emails, domains,
                             email_verified=verified)
    if decision == "sign_in":
        _sign_in_screen(login_providers(secrets))
        st.stop()
    if decision == "denied":
        _denied_screen(email, unverified=verified is False)
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as {email or st.user.get('name') or 'you'}")
        st.button("Sign out", icon=":material/logout:", on_click=st.logout, key="auth_sign_out")
