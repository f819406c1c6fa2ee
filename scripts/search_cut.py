# Checkpoint search_cut: a search rung's cut (diffsweep.grid.search.decide) on the records of its runs,
# written to results/search/<name>/rung<r>.json; the next rung's runs are planned from it.
from diffsweep import grid, io, runs
from diffsweep.grid import search
from diffsweep.logs import setup_logging
from diffsweep.runs import kinds

setup_logging(snakemake.log[0])

name, rung = snakemake.wildcards.search, int(snakemake.wildcards.rung)
spec = search.declared(snakemake.config)[name]
results = snakemake.params.results
models = grid.build(snakemake.config, models=set()).models     # the score sources; no runs expanded
previous = search.survivors_of(search.read_rung(results, name, rung - 1)) if rung else None
planned = search.rung_runs(spec, snakemake.config, models, rung, previous, kinds.GENERATION)
states = runs.index(results, only={run.id for _, run in planned}, keep=("metrics", "nfe"))
decision = search.decide(spec, rung, planned, states, snakemake.params.settings)
for model_id, group in decision["groups"].items():
    print(f"search {name} rung {rung} ({spec.budget} {spec.rungs[rung]}), {model_id}: {group['candidates']} "
          f"candidates, {len(group['survivors'])} kept: {', '.join(group['survivors'])}")
io.write_json(snakemake.output[0], decision)
