# Rule study_error_sources: each trained network's error split into discretisation (the oracle's,
# same sampler configuration and seed) and score error (the rest, and the direct distance between
# the network's samples and the oracle's); CSV and figure.
import functools
import math

import torch

from diffsweep import io, metrics, plots, runs
from diffsweep.logs import setup_logging
from diffsweep.tables import studies

log = setup_logging(snakemake.log[0])
results = snakemake.params.results
table = io.read_parquet(snakemake.input[0])
states = runs.index(results, only=set(table["run_id"]))     # the records of this table's runs, read once


@functools.lru_cache(maxsize=64)
def directions(seed: int, dim: int):
    """The projections a run's own sliced W2 draws for its seed."""
    return metrics.random_directions(snakemake.params.n_projections, dim, torch.Generator().manual_seed(seed))


def projections(run_id: str, seed: int):
    """A run's stored samples projected on its seed's directions, sorted."""
    x = torch.from_numpy(runs.read_run_arrays(results, run_id, states=states)["x"]).flatten(1).double()
    return metrics.projected_sorted(x, directions(seed, x.shape[1]))


# An oracle run is paired with every network's run of its configuration: its projections are kept.
oracle_projections = functools.lru_cache(maxsize=64)(projections)


def samples_distance(network_run: str, oracle_run: str, seed: int) -> float:
    """Sliced W2 between the two runs' stored samples, with the projections a run's own metric
    draws for its seed; NaN (with a warning) where either run kept no samples or they are corrupt."""
    try:
        oracle, network = oracle_projections(oracle_run, int(seed)), projections(network_run, int(seed))
    except (runs.CorruptRecord, runs.NoSamples) as error:
        log.warning("score distance of %s against %s left out: %s", network_run, oracle_run, error)
        return math.nan
    return metrics.sliced_wasserstein2_sorted(network, oracle)


options = snakemake.params.options
measure = options["metric"] == "sliced_w2" and options.get("score_distance", True)
sources = studies.error_sources(table, options["metric"], distance=samples_distance if measure else None)
with io.atomic_path(snakemake.output.csv) as tmp:
    sources.to_csv(tmp, index=False, float_format="%.5g")
plots.error_sources(sources, [snakemake.output.png, snakemake.output.pdf], better=snakemake.params.better)
