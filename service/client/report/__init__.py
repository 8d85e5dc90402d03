"""`decaylab report`: the figures a researcher looks at and one self-contained index.html.

The data comes from the REST API (`data`), so a report can be drawn from a remote service;
several studies (the arms of one comparison) can share one report (`merge`). The figures are
drawn by `plots` (parameter importances by `importance`) and the page by `html`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from service.client.api import ApiClient
from service.client.report import plots
from service.client.report.data import ReportData, fetch_report_data
from service.client.report.html import render_html
from service.client.report.merge import merge_report_data


def build_plots(data: ReportData) -> list[plots.Plot]:
    """The five figures, each drawn or replaced by a note."""
    usable = data.usable
    front = [item["trial"] for item in data.front["items"]]
    epochs = int(data.study["spec"]["task"]["epochs"])
    return [
        plots.accuracy_vs_sparsity(usable, front),
        plots.p_effects(usable),
        plots.curves_by_schedule(usable, data.curves, epochs),
        plots.weight_histograms(data.histograms),
        plots.importance(data.study["spec"], usable),
    ]


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def fetch_studies(client: ApiClient, study_ids: str | Sequence[str]) -> ReportData:
    """One study's report data, or several studies' merged into one report."""
    ids = [study_ids] if isinstance(study_ids, str) else list(study_ids)
    parts = [fetch_report_data(client, study_id) for study_id in ids]
    if len(parts) == 1:
        return parts[0]
    return merge_report_data(parts)


def write_report(client: ApiClient, study_ids: str | Sequence[str], output_dir: Path) -> Path:
    """Write the PNG figures and a self-contained index.html of one or several studies.

    Returns the html's path.
    """
    data = fetch_studies(client, study_ids)
    figures = build_plots(data)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for figure in figures:
        path = output_dir / f"{figure.name}.png"
        if figure.png is not None:
            path.write_bytes(figure.png)
        else:  # a figure from an earlier report of this directory would now mislead
            path.unlink(missing_ok=True)
    index = output_dir / "index.html"
    html = render_html(data, figures, source=client.base_url, image=data_uri)
    index.write_text(html, encoding="utf-8")
    return index
