"""What scoring the default grid's restorations against the exact posterior costs, with each
measurement's reference (exact posterior, exact samples, directions, floors) built once per shard job
and shared by its restorers (runs.restoration.Restoration.references), against building it for every
run (as before), side by side in one process.

    python bench/restoration_scoring.py [--config config/config.yaml] [--shard 0] [--fit-cache PATH] [--before main]

From the config's grid: every restoration shard (its runs_per_job packing), and per shard the distinct
(task, seed, n_samples) its runs measure: a reference is built n_measurements times per distinct key
instead of per run. Then, for every run of one shard of the oracle (`--shard`: its index among them),
`Restoration.finish` on stand-in restorations (each ground truth plus noise: scoring does not depend on
how they were drawn), alternately by a job that keeps its references (shared) and by a fresh job per run
(not shared), the CPU seconds of each. The grid-wide figures are estimated from these: a reference's
cost (a run that builds them, less one that finds them) times the references built, plus every run's
own scoring. With `--before REV`, a third job per run: the posterior block of `Restoration.finish` as it
was at git revision REV (its restoration/metrics.py loaded from git: an exact posterior, exact samples and
floors per run and measurement, one score call per bootstrap resample and floor set) plus this checkout's
measurement metrics. Prints the load average before and after; one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--fit-cache", default=str(Path(tempfile.gettempdir()) / "diffsweep_bench_fit.npz"))
    parser.add_argument("--before", default=None, help="a git revision whose posterior scoring to time as well")
    args = parser.parse_args()
    import torch

    from diffsweep import config as ds_config
    from diffsweep import grid as ds_grid
    from diffsweep.data import make_dataset
    from diffsweep.runs.restoration import Restoration, measure

    torch.set_num_threads(1)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    cfg = ds_config.prepare(ds_config.read_yaml(args.config))
    grid = ds_grid.build(cfg)
    restorations = grid.of_kind("restoration")
    shards = {shard: ids for shard, ids in grid.shards(ds_grid.runs_per_job(cfg)).items() if ids[0] in restorations}

    def key(run):
        return json.dumps([run.task.identity(), run.task.n_measurements, run.seed, run.n_samples], sort_keys=True)
    measurements = sum(restorations[i].task.n_measurements for ids in shards.values() for i in ids)
    built = sum(restorations[ids[0]].task.n_measurements * len(Counter(key(restorations[i]) for i in ids))
                for ids in shards.values())    # n_measurements is a key's: the same for each of its runs
    print(f"{len(restorations)} restoration runs in {len(shards)} shards, {measurements} measurements scored; "
          f"references built: {measurements} per run, {built} shared per shard job")

    options = {kind_option: cfg["restoration"][kind_option] for kind_option in ("metrics", "strips", "keep_samples")}
    options["strips"], options["keep_samples"] = 0, "none"
    oracle = [ids for ids in shards.values() if restorations[ids[0]].model.source == "oracle"][args.shard]
    runs = [ds_grid.run_dict(restorations[i]) for i in oracle]
    data = restorations[oracle[0]].model.data
    dataset = make_dataset(data.family, fit_path=args.fit_cache, **data.knobs)
    reference = dataset.sampler(max(run["task"]["n_measurements"] for run in runs), torch.Generator().manual_seed(0))
    shared = Restoration(dataset, reference, torch.float64, torch.device("cpu"), options)
    seconds = {"shared": [], "not shared": [], **({f"as at {args.before}": []} if args.before else {})}
    before = earlier_scoring(args.before, dataset, options) if args.before else None
    first = []
    for run in runs:
        operator, truth, y = measure(run, dataset, reference, torch.Generator().manual_seed(run["seed"]))
        k = run["n_samples"]
        samples = truth.repeat_interleave(k, 0) + 0.2 * torch.randn(len(truth) * k, *truth.shape[1:],
                                                                    generator=torch.Generator().manual_seed(1),
                                                                    dtype=torch.float64)
        output = (operator, truth, y, samples)
        if before is not None:
            start = time.process_time()
            before(run, output)
            seconds[f"as at {args.before}"].append(time.process_time() - start)
        for mode, job in (("not shared", Restoration(dataset, reference, torch.float64, torch.device("cpu"), options)),
                          ("shared", shared)):
            known = len(shared.posterior_references)
            start = time.process_time()
            job.finish(run, output, None)
            seconds[mode].append(time.process_time() - start)
            if mode == "shared":
                first.append(len(shared.posterior_references) > known)
    per_run = {mode: sum(values) / len(values) for mode, values in seconds.items()}
    if before is not None:
        print(f"  ratio as at {args.before} / shared: {sum(seconds[f'as at {args.before}']) / sum(seconds['shared']):.2f}")
    hits = [s for s, built_here in zip(seconds["shared"], first) if not built_here]
    misses = [s for s, built_here in zip(seconds["shared"], first) if built_here]
    scoring = sum(hits) / len(hits)
    per_reference = (sum(misses) / len(misses) - scoring) / runs[0]["task"]["n_measurements"]
    print(f"shard {args.shard} of the oracle: {len(runs)} runs, {len(misses)} build references, {len(hits)} find them")
    for mode, values in seconds.items():
        print(f"  {mode:10s}: {sum(values):7.1f} s CPU in all, {per_run[mode]:.2f} s per run")
    print(f"  ratio not shared / shared: {sum(seconds['not shared']) / sum(seconds['shared']):.2f}")
    print(f"  a reference (per measurement): {per_reference:.3f} s; a run's own scoring: {scoring:.2f} s "
          f"({scoring / runs[0]['task']['n_measurements']:.3f} s per measurement)")
    unshared = measurements * per_reference + len(restorations) * scoring
    after = built * per_reference + len(restorations) * scoring
    print(f"grid estimate: {unshared / 60:.1f} min CPU per run, {after / 60:.1f} min shared "
          f"(references {measurements * per_reference / 60:.1f} -> {built * per_reference / 60:.1f} min)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def earlier_scoring(revision: str, dataset, options):
    """finish's scoring as at `revision`: its restoration/metrics.py (read from git) on every measurement of
    a run, posterior block as it was then (exact posterior, exact samples, metrics with floors and bootstrap)."""
    import importlib.util
    import subprocess

    import torch

    from diffsweep.restoration import metrics as rmetrics
    from diffsweep.restoration.operators import measurement_noise_std
    from diffsweep.restoration.posterior import exact_posterior

    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:src/diffsweep/restoration/metrics.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "metrics_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("metrics_before", path)
    old = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = old       # its dataclasses look their module up
    spec.loader.exec_module(old)
    metrics = options["metrics"]

    def score(run, output):
        operator, truth, y, samples = output
        samples = samples.double().reshape(len(truth), run["n_samples"], *dataset.shape)
        noise_std = measurement_noise_std(operator, run["task"]["noise_std_effective"])
        generator = torch.Generator().manual_seed(run["seed"])
        for j in range(len(truth)):
            rmetrics.measurement_metrics(samples[j], truth[j], y[j], operator.restrict(j), noise_std)
            posterior = exact_posterior(dataset.mixture, operator.restrict(j).matrix(), y[j].flatten(), noise_std)
            exact = posterior.sample(metrics["posterior_samples"], generator)
            old.posterior_metrics(samples[j], posterior, truth[j], exact, generator, seed=run["seed"],
                                  floor_repeats=metrics["floor_repeats"], resamples=metrics["bootstrap_resamples"])
    return score


if __name__ == "__main__":
    main()
