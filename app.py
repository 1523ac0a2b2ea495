"""MGI dashboard: page config and navigation only; each page lives in pages/."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="MGI · user interests from reviews", page_icon="🧭", layout="wide")

pages = [
    st.Page("pages/data.py", title="Data", icon=":material/database:", default=True),
]
st.navigation(pages).run()
