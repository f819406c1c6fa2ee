"""Figures from the tables, in one style, each saved in every format it is asked for (PNG, PDF).
A module per figure family; the figures take a table and the names of its columns, so the same
code draws generation and restoration results:

- style.py      what every figure shares: the theme, the size limits of a figure in a large sweep
                (MAX_SERIES, MAX_PANELS) and how the shown part is picked, log axes, labels, `save`
- lines.py      a metric against NFE (or any x): a line per preset, bands over seeds, a panel per
                score source and dataset (or task)
- heatmaps.py   a metric over two parameters, e.g. training sigma-distribution x sampling schedule
- schedules.py  sigma_k against k for every schedule and step count of a sweep
- training.py   training loss against step, denoising error by training sigma, per trained model
- samples.py    scatter grids of 2-D samples (image mosaics), exact samples beside each sampler's

The studies draw their own figures in their modules (diffsweep.studies), in this style.
"""

import matplotlib

matplotlib.use("Agg")  # jobs have no display; set here, before any figure module imports pyplot
