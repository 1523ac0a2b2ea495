"""UI helpers for the Streamlit pages: cached resources, session keys, figure builders."""
