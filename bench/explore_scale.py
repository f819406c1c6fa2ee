"""Benchmark: the results explorer (results/explore.html) of a synthetic sweep of many runs.

    python bench/explore_scale.py [--runs 100000] [--out DIR] [--browser]

The generation table of bench/plot_scale.py (`synthetic_table`: the default grid's shape scaled up,
four seeds) with a wall time per run. Prints the seconds to build the page, its size in MB (plotly.js,
data; no thumbnails: the synthetic runs have no stored samples, and thumbnails are capped at
diffsweep.explore.page.THUMBNAIL_BYTES), and with --browser, in headless Chromium (Debian's chromium
and chromedriver), the milliseconds until the page's first figure is drawn (its `explore.readyMs`,
from the start of navigation) and of redrawing after a filter and after a change of metric axis.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def synthetic_runs(n_runs: int):
    """About `n_runs` rows of a generation table (plot_scale.synthetic_table) with a wall time."""
    from plot_scale import synthetic_table

    frame = synthetic_table(n_runs)
    return frame.assign(wall_s=frame["nfe"] * 0.01)


def in_browser(page: Path) -> dict:
    """Milliseconds: until the first figure (from navigation start), a filter's redraw, log-y's redraw."""
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
    try:
        driver.get(page.as_uri())
        WebDriverWait(driver, 300).until(lambda d: d.execute_script("return !!(window.explore && explore.ready)"))
        figures = {"first figure": driver.execute_script("return explore.readyMs")}
        for name, act in (("filter (dataset)", lambda: Select(driver.find_element("id", "filter-dataset"))
                           .select_by_index(1)),
                          ("log y", lambda: driver.find_element("id", "logy").click())):
            draws = driver.execute_script("return explore.draws")
            act()
            WebDriverWait(driver, 300).until(lambda d: d.execute_script("return explore.draws") > draws)
            figures[name] = driver.execute_script("return explore.drawMs")
        return figures
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()
    from diffsweep import explore

    out = args.out or Path(tempfile.mkdtemp(prefix="explore_scale_"))
    out.mkdir(parents=True, exist_ok=True)
    frame = synthetic_runs(args.runs)
    start = time.perf_counter()
    size = explore.write(out / "explore.html", {"generation": frame}, out)
    print(f"{len(frame)} runs: page built in {time.perf_counter() - start:.1f} s, {size / 1e6:.1f} MB "
          f"({out / 'explore.html'})")
    if args.browser:
        for name, ms in in_browser(out / "explore.html").items():
            if ms is not None:
                print(f"  {name}: {ms:.0f} ms")


if __name__ == "__main__":
    main()
