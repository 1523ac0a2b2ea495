"""The Profiles page's embedding map: a PCA of the catalogue's item vectors and its figure.

Pure (no Streamlit): ``fit_item_map`` projects every item on the first two principal
components (fitted on a fixed sample of a large catalogue); ``embedding_map_figure`` draws
the catalogue with one user's reviews, interest centroids and recommendations on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from dashboard.charts import empty_figure, plain_label
from dashboard.profile_figures import FIGURE_HEIGHT, style_figure
from mgi_core.store.queries.profiles import UserVectors

MAP_ITEMS_SHOWN = 5000  # catalogue points drawn on the map (all are projected)
MAP_FIT_ITEMS = 20000  # items the PCA is fitted on (a fixed sample beyond that)


@dataclass
class ItemMap:
    """The catalogue's item vectors projected on their first two principal components."""

    item_ids: np.ndarray  # (n_items,)
    coords: np.ndarray  # (n_items, 2)
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (2, d); zero rows when fewer than two components exist
    explained: tuple[float, float]  # share of variance on each axis

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """(m, d) vectors -> (m, 2) map coordinates, with the catalogue's projection."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, len(self.mean))
        return (vectors - self.mean) @ self.components.T

    def coords_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """(m, 2) coordinates of the given items; items not on the map are left out."""
        position = {i: k for k, i in enumerate(self.item_ids)}
        rows = [position[i] for i in item_ids if i in position]
        return self.coords[rows].reshape(-1, 2)


def fit_item_map(
    item_ids: np.ndarray, vectors: np.ndarray, max_fit: int = MAP_FIT_ITEMS, seed: int = 0
) -> ItemMap:
    """PCA (scikit-learn) of item vectors (n, d), fitted on at most ``max_fit`` of them."""
    from sklearn.decomposition import PCA

    vectors = np.asarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    components = np.zeros((2, d), dtype=np.float32)
    mean = vectors.mean(axis=0) if n else np.zeros(d, dtype=np.float32)
    explained = [0.0, 0.0]
    k = min(2, n - 1, d)  # PCA needs at least two points for one component
    if k >= 1:
        fit = vectors
        if n > max_fit:
            rng = np.random.default_rng(seed)
            fit = vectors[np.sort(rng.choice(n, size=max_fit, replace=False))]
        pca = PCA(n_components=k, random_state=seed).fit(fit)
        components[:k] = pca.components_
        mean = pca.mean_.astype(np.float32)
        explained[:k] = [float(v) for v in pca.explained_variance_ratio_]
    item_map = ItemMap(np.asarray(item_ids, dtype=object), np.zeros((n, 2)), mean, components,
                       (explained[0], explained[1]))
    item_map.coords = item_map.project(vectors)
    return item_map


def embedding_map_figure(
    item_map: ItemMap,
    user: UserVectors | None = None,
    recommended: Sequence[str] = (),
    titles: Mapping[str, str | None] | None = None,
    max_items: int = MAP_ITEMS_SHOWN,
) -> go.Figure:
    """The catalogue on its first two principal components, with one user on top.

    Traces: catalogue items (grey; a fixed sample of ``max_items`` when larger), the
    user's train reviews, their interest centroids and overall vector, and the
    recommended items (numbered by rank).
    """
    title = "Embedding map (PCA of item vectors)"
    if not len(item_map.item_ids):
        return empty_figure(title, "No item vectors", FIGURE_HEIGHT)
    titles = titles or {}
    shown = np.arange(len(item_map.item_ids))
    if len(shown) > max_items:
        shown = np.sort(np.random.default_rng(0).choice(shown, size=max_items, replace=False))
    ids = item_map.item_ids[shown]
    names = [plain_label(titles.get(i) or i) for i in ids]
    scatter = go.Scattergl if len(shown) > 1000 else go.Scatter
    traces = [scatter(x=item_map.coords[shown, 0], y=item_map.coords[shown, 1], mode="markers",
                      name="Catalogue items", text=names,
                      marker={"size": 5, "color": "#c7c7c7"},
                      hovertemplate="%{text}<extra>item</extra>")]
    if user is not None and len(user.reviews):
        xy = item_map.project(user.reviews)
        traces.append(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="User's train reviews",
            text=[plain_label(f"review {r} on {i}") for r, i in
                  zip(user.review_ids, user.item_ids, strict=True)],
            marker={"size": 9, "color": "#1f77b4"}, hovertemplate="%{text}<extra></extra>"))
    if user is not None and len(user.interests):
        xy = item_map.project(user.interests)
        traces.append(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers+text", name="Interest centroids",
            text=[f"interest {n}" for n in range(1, len(xy) + 1)], textposition="top center",
            marker={"size": 16, "symbol": "star", "color": "#2ca02c",
                    "line": {"width": 1, "color": "#000"}},
            hovertemplate="%{text}<extra></extra>"))
    if user is not None and user.overall is not None:
        xy = item_map.project(user.overall)
        traces.append(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="Overall interest",
            marker={"size": 14, "symbol": "x", "color": "#000"},
            hovertemplate="overall interest<extra></extra>"))
    position = {i: k for k, i in enumerate(item_map.item_ids)}
    ranked = [(n, i) for n, i in enumerate(recommended, start=1) if i in position]
    if ranked:
        xy = item_map.coords[[position[i] for _, i in ranked]]
        traces.append(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers+text", name="Recommended items",
            text=[str(n) for n, _ in ranked], textposition="middle right",
            customdata=[plain_label(titles.get(i) or i) for _, i in ranked],
            marker={"size": 12, "symbol": "diamond", "color": "#ff7f0e",
                    "line": {"width": 1, "color": "#000"}},
            hovertemplate="#%{text}: %{customdata}<extra>recommended</extra>"))
    fig = go.Figure(traces)
    x_share, y_share = item_map.explained
    fig = style_figure(fig, title, x=f"PC1 ({x_share:.0%} of variance)",
                  y=f"PC2 ({y_share:.0%} of variance)", legend=True)
    fig.update_layout(height=520)
    return fig
