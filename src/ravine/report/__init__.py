"""Rendering: matplotlib figures and self-contained HTML reports.

Library code elsewhere returns data; this package draws it. Figures use the non-interactive Agg backend.
:func:`save_figure` writes PNG/SVG files; :class:`HtmlReport` builds a single HTML file with every figure
embedded, so a report can be mailed or opened offline.
"""

from __future__ import annotations

from ravine.report._figures import new_figure, save_figure
from ravine.report.html import HtmlReport

__all__ = ["HtmlReport", "new_figure", "save_figure"]
