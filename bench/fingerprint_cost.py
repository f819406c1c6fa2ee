"""Benchmark: the cost of code fingerprints in a fresh process (diffsweep.fingerprint).

    python bench/fingerprint_cost.py

`diffsweep status` and the Snakefile's parse would fingerprint every (kind, family, schedule, score
source) of a grid once per process; the target is well under a second. Prints, in seconds of this
process's CPU time (`time.process_time`, so a busy shared machine inflates it less): importing the
registries (the parse imports them anyway), then the draw fingerprint of every registered sampler and
restorer on its default schedule (oracle; restorers with one operator), then the two evaluate
fingerprints and the training fingerprint, and whether torch was imported (it must not be).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def timed(label: str, work) -> None:
    started = time.process_time()
    count = work()
    print(f"{label:<58} {time.process_time() - started:6.3f} s" + (f"  ({count} fingerprints)" if count else ""))


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    registries = {}

    def imports():
        from diffsweep import fingerprint, restoration, samplers
        registries.update(fingerprint=fingerprint, restoration=restoration, samplers=samplers)

    timed("import diffsweep.fingerprint, samplers, restoration", imports)
    fp = registries["fingerprint"].Fingerprinter()
    samplers, restoration = registries["samplers"], registries["restoration"]

    def draws():
        for name in samplers.names():
            fp.draw("generation", name, samplers.get(name).default_schedule, "oracle")
        for name in restoration.names():
            fp.draw("restoration", name, restoration.get(name).default_schedule, "oracle", operator="inpaint_box")
        return len(samplers.names()) + len(restoration.names())

    timed("draw: every sampler and restorer (first: parses the source)", draws)
    timed("draw: every sampler and restorer again (cached)", draws)
    timed("evaluate (generation, restoration) and training",
          lambda: [fp.evaluate("generation"), fp.evaluate("restoration"), fp.training()] and 3)
    print(f"torch imported: {'torch' in sys.modules}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
