"""Benchmark: the results explorer (results/explore.html) of a synthetic sweep of many runs.

    python bench/explore_scale.py [--runs 100000] [--metrics 7] [--out DIR] [--browser]

The generation table of bench/plot_scale.py (`synthetic_table`: the default grid's shape scaled up,
four seeds) with a wall time per run and `--metrics` metric columns (1: sliced W2; up to 7). Prints
the seconds to build the page and its size in MB (plotly.js and the data; no thumbnails: the
synthetic runs have no stored samples, and thumbnails are capped at explore.page.THUMBNAIL_BYTES).
With --browser, in headless Chromium (Debian's chromium and chromedriver), the milliseconds until
the first figure is drawn (the page's `explore.readyMs`, from the start of navigation) and of the
redraw after a filter and after log y, for this page and a small one (`--reference-runs`) loaded
alternately: on a shared machine their ratio is the figure that holds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


# Metrics of a generation table, after plot_scale's sliced_w2: --metrics N adds the first N - 1 of these.
MORE_METRICS = ("mmd", "energy_distance", "mode_weight_error", "off_mode_fraction", "mode_coverage", "mean_loglik")


def synthetic_runs(n_runs: int, metrics: int = 1):
    """About `n_runs` rows of a generation table (plot_scale.synthetic_table) with a wall time and
    `metrics` metric columns (random values: the page's size depends on how many there are)."""
    import numpy as np
    from plot_scale import synthetic_table

    frame = synthetic_table(n_runs)
    rng = np.random.default_rng(1)
    extra = {name: rng.random(len(frame)) for name in MORE_METRICS[:max(0, metrics - 1)]}
    return frame.assign(wall_s=frame["nfe"] * 0.01, **extra)


def in_browser(pages: list, repeats: int) -> list[dict]:
    """Per page, the median milliseconds over `repeats` loads (the pages alternating, so that each
    sees the same load): until the first figure (from navigation start), a filter's redraw, log y's."""
    import statistics

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--enable-unsafe-swiftshader"):
        options.add_argument(argument)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    measured = [{} for _ in pages]
    try:
        for _ in range(repeats):
            for page, figures in zip(pages, measured):
                driver.get(page.as_uri())
                WebDriverWait(driver, 300).until(lambda d: d.execute_script("return !!(window.explore && explore.ready)"))
                figures.setdefault("first figure", []).append(driver.execute_script("return explore.readyMs"))
                for name, act in (("filter (dataset)", lambda: Select(driver.find_element("id", "filter-dataset"))
                                   .select_by_index(1)),
                                  ("log y", lambda: driver.find_element("id", "logy").click())):
                    draws = driver.execute_script("return explore.draws")
                    act()
                    WebDriverWait(driver, 300).until(lambda d: d.execute_script("return explore.draws") > draws)
                    figures.setdefault(name, []).append(driver.execute_script("return explore.drawMs"))
    finally:
        driver.quit()
    return [{name: statistics.median(values) for name, values in figures.items()} for figures in measured]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--metrics", type=int, default=1, help=f"metric columns, 1 to {1 + len(MORE_METRICS)}")
    parser.add_argument("--browser", action="store_true")
    parser.add_argument("--reference-runs", type=int, default=1000, help="the small page's runs, loaded alternately")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from diffsweep import explore

    out = args.out or Path(tempfile.mkdtemp(prefix="explore_scale_"))
    pages = []
    for runs in (args.runs, args.reference_runs):
        folder = out / f"runs_{runs}"
        folder.mkdir(parents=True, exist_ok=True)
        frame = synthetic_runs(runs, args.metrics)
        start = time.perf_counter()
        size = explore.write(folder / "explore.html", {"generation": frame}, folder)
        print(f"{len(frame)} runs, {args.metrics} metrics: page built in {time.perf_counter() - start:.1f} s, "
              f"{size / 1e6:.1f} MB ({folder / 'explore.html'})")
        pages.append(folder / "explore.html")
    if args.browser:
        large, small = in_browser(pages, args.repeats)
        for name in large:
            print(f"  {name}: {large[name]:.0f} ms, {large[name] / small[name]:.1f} x the small page's "
                  f"({small[name]:.0f} ms; medians of {args.repeats})")


if __name__ == "__main__":
    main()
