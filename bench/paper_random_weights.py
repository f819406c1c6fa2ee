"""Check and benchmark: paper experiments through the workflow on the full-size FFHQ-256 networks
with random weights (what a user with the real checkpoints runs, at the same cost).

Writes a random-weight checkpoint of each format in its file's layout (a plain ADM state_dict; a
score_sde dict whose `model` keys carry `module.` and whose `ema` holds shadow_params), `--images`
256 x 256 images (the `blobs` family's, diffsweep.data.write_blob_images) and
config/paper_tiny.yaml with only its three paths changed, keeping the `--presets` and
`--restorers` named (their steps set to `--steps`, `--images` images each), then runs Snakemake on
it to the generation and restoration tables. Prints the wall time of the workflow, each run's
status, seconds and images per second; peak GPU memory per network call is
bench/pretrained_throughput.py's.

    python bench/paper_random_weights.py --work DIR [--device cuda] [--steps 100] [--images 8]
        [--presets paper_vp_sigmoid paper_ve] [--restorers paper_vp_sr4] [--cores 2]

On the 2-core CPU a full-size call takes about 14 s per image: use `--steps 2 --images 1` there.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def write_random_checkpoints(folder: Path) -> dict:
    """format -> path of a full-size random-weight checkpoint in that format's file layout."""
    import torch

    from diffsweep import pretrained

    torch.manual_seed(0)
    paths = {"adm_ffhq256": folder / "ffhq_10m_random.pt", "ncsnpp_ffhq256": folder / "checkpoint_48_random.pth"}
    adm = pretrained.build_network("adm_ffhq256")
    torch.save(adm.state_dict(), paths["adm_ffhq256"])
    ncsnpp = pretrained.build_network("ncsnpp_ffhq256")
    torch.save({"model": {f"module.{key}": value for key, value in ncsnpp.state_dict().items()},
                "ema": {"decay": 0.999, "num_updates": 0,
                        "shadow_params": [p.detach().clone() for p in ncsnpp.parameters() if p.requires_grad]},
                "optimizer": {}, "step": 0}, paths["ncsnpp_ffhq256"])
    return paths


def experiment_config(work: Path, checkpoints: dict, images: Path, args) -> dict:
    """paper_tiny.yaml with its paths changed, cut to the chosen presets at `args.steps` steps."""
    config = yaml.safe_load((ROOT / "config" / "paper_tiny.yaml").read_text())
    config["results"] = "results"      # under the working directory, --work
    config["jobs"]["device"] = args.device
    config["datasets"]["ffhq"]["knobs"].update(path=str(images), limit=args.images)
    for model in config["models"].values():
        model["checkpoint"] = str(checkpoints[model["format"]])
    config["data"]["n_reference"] = args.images
    config["sampling"]["n_samples"] = args.images
    config["samplers"] = {name: {**config["samplers"][name], "steps": args.steps} for name in args.presets}
    restoration = config["restoration"]
    restoration["restorers"] = {name: {**restoration["restorers"][name], "steps": args.steps} for name in args.restorers}
    restoration["n_measurements"] = args.images
    config["tables"] = {"ablations": {}}
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a folder for the files and the results")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--presets", nargs="*", default=["paper_vp_sigmoid", "paper_ve"])
    parser.add_argument("--restorers", nargs="*", default=["paper_vp_sr4"])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    import pandas as pd

    from diffsweep.data import write_blob_images

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    checkpoints = write_random_checkpoints(work)
    images = work / "images"
    write_blob_images(images, count=args.images, resolution=256)
    (work / "config.yaml").write_text(yaml.safe_dump(experiment_config(work, checkpoints, images, args)))
    print(f"# files written in {time.perf_counter() - start:.1f} s: {', '.join(p.name for p in checkpoints.values())}, "
          f"{args.images} images; device {args.device}, K = {args.steps}", flush=True)

    targets = ["results/tables/generation.parquet"] + (["results/tables/restoration.parquet"] if args.restorers else [])
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles" / "default"),
                             "-s", str(ROOT / "Snakefile"), "-d", str(work), "--configfile", str(work / "config.yaml"),
                             "--cores", str(args.cores), *targets], cwd=work)
    wall = time.perf_counter() - start
    print(f"# workflow: exit {result.returncode}, {wall:.1f} s wall")
    for target in targets:
        path = work / target
        if not path.exists():
            continue
        table = pd.read_parquet(path)
        per_run = table.drop_duplicates("run_id")
        for _, run in per_run.iterrows():
            name = run.get("restorer") if "restorer" in per_run.columns else run["sampler"]
            images_per_s = args.images / run["wall_s"] if run["wall_s"] else float("nan")
            print(f"{path.stem:12} {name:22} {run['model']:10} status {run['status']:8} nfe {int(run['nfe']):4d} "
                  f"{run['wall_s']:8.1f} s  {images_per_s:7.3f} img/s", flush=True)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
