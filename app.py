"""MGI dashboard: page config and navigation only; each page lives in app_pages/.

(Not "pages/": Streamlit would also treat that as a legacy multipage folder on deep links.)
With an [auth] section in .streamlit/secrets.toml, require_login() lets only signed-in (and
allow-listed) users past; see dashboard/auth.py.
"""

from __future__ import annotations

import streamlit as st

from dashboard.auth import require_login
from dashboard.background import start_deferred

st.set_page_config(page_title="MGI · user interests from reviews", page_icon="🧭", layout="wide")
require_login()  # sign-in screen, "access denied" or a config error stop here: no page runs

pages = [
    st.Page("app_pages/data.py", title="Data", icon=":material/database:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/profiles.py", title="Profiles", icon=":material/person_search:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("app_pages/metrics.py", title="Metrics", icon=":material/monitoring:"),
]
try:
    st.navigation(pages).run()
finally:  # also after st.stop() or a rerun
    start_deferred()  # fits a page asked for begin once it is drawn (dashboard/background.py)
