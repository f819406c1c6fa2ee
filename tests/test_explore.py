"""The results explorer (results/explore.html): its aggregates against stats.py, and the page itself in
a real browser (headless Chromium through Selenium and Debian's chromedriver; .ci/run installs them as
root, and these tests are skipped, with the reason, where they are missing)."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diffsweep import explore, io, stats, tables
from diffsweep.runs import kinds

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def runs_table(rows, parameters):
    return tables.with_params(tables.typed_frame(rows), parameters)


def test_a_point_pools_its_seeds_with_the_t_interval_and_one_seed_takes_its_sampling_interval():
    rng = np.random.default_rng(1)
    rows = []
    for preset, seeds in (("a", [0, 1, 2]), ("b", [0, 1, 2]), ("c", [0])):
        for seed in seeds:
            rows.append({"run_id": f"{preset}-{seed:016x}", "dataset": "ring8", "model": "oracle", "sampler": preset,
                         "sampler_family": "ddim", "steps": 10, "seed": seed, "status": "ok", "nfe": 10, "wall_s": 0.1,
                         "sliced_w2": float(rng.normal(1.0, 0.1)), "sliced_w2_se": 0.02, "sliced_w2_floor": 0.1,
                         "model_id": "oracle-0000000000000000"})
    rows.append({**rows[0], "run_id": "a-00000000000000ff", "seed": 3, "status": "failed", "sliced_w2": None})
    frame = runs_table(rows, ["dataset", "model", "sampler", "sampler_family", "steps", "seed"])
    view = explore.view(frame, kinds.GENERATION)
    assert view["metrics"] == ["sliced_w2"] and view["costs"] == ["nfe", "wall_s"]
    points = view["points"]
    preset = view["filters"]["sampler"]
    for i in range(view["n_points"]):
        name = preset["values"][preset["codes"][i]]
        values = frame[(frame["sampler"] == name) & (frame["status"] == "ok")]["sliced_w2"].to_numpy()
        metric = points["metric"]["sliced_w2"]
        if len(values) > 1:
            expected = stats.seed_interval(values)
            assert metric["mean"][i] == pytest.approx(expected.estimate, rel=1e-5)
            assert metric["half"][i] == pytest.approx(expected.half_width, rel=5e-3)     # 3 significant digits
            assert view["interval_methods"][metric["method"][i]] == "t"
        else:   # one seed: the run's own sampling interval, mean +- z se
            assert view["interval_methods"][metric["method"][i]] == "sampling"
            assert metric["half"][i] == pytest.approx(1.959964 * 0.02, rel=5e-3)
        assert metric["floor"][i] == 0.1
        assert points["n"][i] == len(values)
        assert points["statuses"].get("failed", [0] * 3)[i] == (name == "a")
        first = points["first"][i]
        assert view["runs"]["key"][first:first + len(values)] == [str(s) for s in sorted(
            frame[(frame["sampler"] == name) & (frame["status"] == "ok")]["seed"])]


def test_a_restoration_replicate_is_a_seed_and_a_measurement():
    rows = [{"run_id": f"r-{seed:016x}", "dataset": "ring8", "model": "oracle", "task": "half", "restorer": "r",
             "restorer_family": "ddrm", "seed": seed, "measurement": m, "status": "ok", "nfe": 10, "psnr": 20.0 + m}
            for seed in (0, 1) for m in (0, 1)]
    view = explore.view(runs_table(rows, ["dataset", "model", "task", "restorer", "restorer_family", "seed"]),
                        kinds.RESTORATION)
    assert view["replicates"] == ["seed", "measurement"]
    assert view["runs"]["key"] == ["0/0", "0/1", "1/0", "1/1"] and view["points"]["n"] == [4]


def test_a_2d_thumbnail_draws_the_samples_where_they_are_over_the_reference():
    from diffsweep.explore import thumbnails

    reference = np.random.default_rng(0).uniform(-1, 1, size=(2000, 2))
    samples = np.tile([[0.9, 0.9]], (50, 1))        # every sample near the top right corner
    picture = thumbnails.density(samples, reference)
    side = thumbnails.PIXELS
    assert picture.shape == (side, side, 3)
    blue = (picture[..., 2].astype(int) - picture[..., 0]) > 60
    rows, columns = np.nonzero(blue)
    assert len(rows) and rows.max() < side / 2 and columns.min() > side / 2    # y up: the top right quarter
    assert (picture[side // 4:3 * side // 4, side // 4:3 * side // 4] < 255).any()   # the reference, grey


# --- in a browser ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"no headless browser: {CHROMIUM} and {CHROMEDRIVER} are Debian's chromium and "
                    f"chromium-driver (apt-get install chromium chromium-driver; .ci/run does as root)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--enable-unsafe-swiftshader"):   # WebGL (the 100k page's traces) in software
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(driver, path: Path, timeout: float):
    """Load the page and wait for the flag it sets once its first figure is drawn (a handshake)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return !!(window.explore && explore.ready)"))


def choose(driver, select: str, value: str) -> None:
    """Pick an option of a menu by its value or text and wait for the figure's redraw (a handshake)."""
    from selenium.webdriver.support.ui import Select, WebDriverWait

    draws = driver.execute_script("return explore.draws")
    menu = Select(driver.find_element("id", select))
    if value in (menu.first_selected_option.text, menu.first_selected_option.get_attribute("value")):
        return      # picked already: no change, no redraw
    menu.select_by_visible_text(value) if value in [o.text for o in menu.options] else menu.select_by_value(value)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return explore.draws") > draws)


def pareto_front(points: pd.DataFrame, metric: str, cost: str) -> set:
    """Brute force, per score source: the index labels of the points no other point beats (cost and
    metric at most as large, one smaller; lower is better)."""
    front = set()
    for _, group in points.groupby("model_id"):
        for label, p in group.iterrows():
            beaten = ((group[cost] <= p[cost]) & (group[metric] <= p[metric])
                      & ((group[cost] < p[cost]) | (group[metric] < p[metric]))).any()
            if not beaten:
                front.add(label)
    return front


@pytest.mark.workflow
@pytest.mark.slow
def test_the_smoke_sweeps_page_filters_draws_its_pareto_front_and_shows_a_points_samples(browser, smoke_run,
                                                                                          tmp_path):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.support.ui import WebDriverWait

    results = smoke_run / "results"
    assert (results / "explore.html").is_file()      # the workflow wrote it
    generation = io.read_parquet(results / "tables" / "generation.parquet")
    page = tmp_path / "explore.html"
    explore.write(page, {"generation": generation}, results, sorted((results / "tables" / "ablations").glob("*.html")),
                  first_metrics=["sliced_w2"])
    open_page(browser, page, timeout=60)
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith(("data:", "file:")) for name in fetched), f"the page fetched {fetched}"
    assert browser.execute_script("return document.querySelectorAll('iframe').length") == 2    # ablation tables

    choose(browser, "filter-dataset", "ring8")
    # the same points from the Parquet table: ring8, a point per parameter setting but the seed
    parameters = [c for c in tables.param_columns(generation) if c != "seed"]
    ok = generation[(generation["dataset"] == "ring8") & (generation["status"] == "ok")]
    metrics = browser.execute_script("return [...document.getElementById('metric').options].map(o => o.value)")
    assert metrics[0] == "sliced_w2" and set(metrics) >= {"mmd", "energy_distance", "mean_loglik"}
    fronts = []
    for metric in metrics:
        choose(browser, "metric", metric)
        state = browser.execute_script("return {shown: explore.state.shown, front: explore.state.front, "
                                       "runs: explore.state.shown.map(i => [i, explore.runsOf(i)])}")
        points = (ok[ok[metric].notna()].groupby(parameters, dropna=False)
                  .agg(value=(metric, "mean"), nfe=("nfe", "mean"), model_id=("model_id", "first"),
                       runs=("run_id", lambda r: tuple(sorted(r)))).reset_index(drop=True))
        sign = 1 if tables.direction(metric) == "lower" else -1
        expected = {points.loc[label, "runs"] for label in pareto_front(points.assign(value=sign * points["value"]),
                                                                        "value", "nfe")}
        shown_runs = {index: tuple(sorted(run_ids)) for index, run_ids in state["runs"]}
        assert sorted(shown_runs.values()) == sorted(points["runs"]), metric
        assert {shown_runs[i] for i in state["front"]} == expected, metric
        assert browser.find_element("id", "shown").text.startswith(
            f"{len(points)} of 12 points shown; Pareto front: {len(expected)} points"), metric
        fronts.append(len(expected) / len(points))
    assert min(fronts) < 1, "every point is on every front: the check above told nothing"
    choose(browser, "metric", "sliced_w2")
    state = browser.execute_script("return {shown: explore.state.shown, front: explore.state.front, "
                                   "runs: explore.state.shown.map(i => [i, explore.runsOf(i)])}")
    assert len(state["shown"]) == 8
    shown_runs = {index: tuple(sorted(run_ids)) for index, run_ids in state["runs"]}

    # click a point where it is drawn: its samples (the thumbnail of its lowest seed's run) and its row;
    # the point of largest NFE on a front (the page embeds samples of each preset's largest NFE)
    run_of = ok.set_index("run_id")
    target = max(state["front"], key=lambda i: (run_of.loc[list(shown_runs[i]), "nfe"].max(), -i))
    first_run = run_of.loc[list(shown_runs[target])].sort_values("seed").index[0]
    browser.execute_script("window.scrollTo(0, 0)")
    where = browser.execute_script("return explore.pixelOf(arguments[0])", target)
    action = ActionBuilder(browser)
    action.pointer_action.move_to_location(int(where["x"]), int(where["y"]))
    action.pointer_action.click()
    action.perform()
    thumbnail = WebDriverWait(browser, 10).until(lambda d: d.find_element("id", "thumbnail"))
    assert int(thumbnail.get_attribute("data-point")) == target
    assert thumbnail.get_attribute("data-run") == first_run
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumbnail) == 96
    row = browser.find_element("id", "row").text
    assert first_run in row and "dataset ring8" in row
    # A: this point, B: another; the comparison lists every metric (one seed here: the two runs'
    # sampling intervals combined where the table has <metric>_se, else no interval)
    browser.find_element("id", "set-a").click()
    browser.execute_script("explore.select(arguments[0])", next(i for i in state["shown"] if i != target))
    browser.find_element("id", "set-b").click()
    rows = browser.find_elements("css selector", "#comparison tr")
    assert len(rows) == 1 + len(metrics)
    for row in rows[1:]:
        name = row.text.split()[0]
        assert ("sampling" in row.text) if f"{name}_se" in generation.columns else ("no interval" in row.text), row.text
    assert any("sampling" in row.text for row in rows[1:])
    browser.save_screenshot(str(tmp_path / "explore.png"))
    assert (tmp_path / "explore.png").stat().st_size > 10_000


@pytest.mark.slow      # a browser and a 100k-run page: not the inner loop (make test-quick)
def test_a_page_of_100k_runs_is_bounded_and_loads(browser, tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    from explore_scale import synthetic_runs

    frame = synthetic_runs(100_000)
    frame["sliced_w2_floor"] = frame["dataset"].map({"ring8": 0.02, "grid25": 0.03, "digits_gmm": 0.5})
    page = tmp_path / "explore.html"
    size = explore.write(page, {"generation": frame}, tmp_path)       # no records here: no thumbnails
    assert size < 20e6
    open_page(browser, page, timeout=60)
    n_points = frame[tables.param_columns(frame)].drop(columns="seed").drop_duplicates().shape[0]
    assert browser.execute_script("return explore.state.shown.length") == n_points
    floors = browser.execute_script("return document.getElementById('plot').data.filter(t => t.name.startsWith("
                                    "'floor')).map(t => [t.name, t.y[0]])")
    assert dict(floors) == pytest.approx({"floor: exact samples (digits_gmm)": 0.5,
                                          "floor: exact samples (grid25)": 0.03, "floor: exact samples (ring8)": 0.02})
    # a paired comparison of two points against numpy: the differences over their shared seeds
    a, b = browser.execute_script("return explore.state.front.slice(0, 2)")
    result = browser.execute_script("return explore.compare(arguments[0], arguments[1])", a, b)["sliced_w2"]
    runs = [browser.execute_script("return explore.runsOf(arguments[0])", i) for i in (a, b)]
    by_id = frame.set_index("run_id")
    difference = (by_id.loc[runs[0]].set_index("seed")["sliced_w2"] - by_id.loc[runs[1]].set_index("seed")["sliced_w2"])
    mean, low, high = stats.t_interval(difference.to_numpy())
    assert (result["n"], result["mean"], result["low"], result["high"]) == pytest.approx(
        (len(difference), mean, low, high), rel=1e-4, abs=1e-6)
