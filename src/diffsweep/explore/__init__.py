"""The results explorer: `results/explore.html`, one self-contained page that browses a sweep
(docs/tables.md, "The explorer").

- points.py      a table of runs -> per-preset-point aggregates (seeds pooled, intervals) and the
                 replicate values the page pairs; the metrics and costs it offers
- thumbnails.py  small PNGs of runs' stored samples, as data: URIs
- page.py        the HTML: plotly.js and explore.js inlined, the data, thumbnails, ablation tables
- explore.js     the page's script: filters, the figure, Pareto fronts, floors, click, paired comparison

pandas, scipy and plotly are imported by these modules: import the package only where a page is built.
"""

from diffsweep.explore.page import MAX_THUMBNAILS, build, write
from diffsweep.explore.points import COSTS, metrics_of, view

__all__ = ["COSTS", "MAX_THUMBNAILS", "build", "metrics_of", "view", "write"]
