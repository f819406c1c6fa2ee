"""Job logging: messages, warnings and an uncaught traceback go to the rule's log file too, and
so do the threads' tracebacks of a job killed by a fatal signal (a segfault in an extension)."""

from __future__ import annotations

import faulthandler
import logging
import sys
from pathlib import Path

fatal_log = None   # the log file faulthandler writes to


def setup_logging(log_path=None) -> logging.Logger:
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="a"))  # a requeued job keeps the earlier attempt's lines
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers,
                        force=True)
    logging.captureWarnings(True)
    logger = logging.getLogger("diffsweep")

    def log_uncaught(kind, value, traceback):
        logger.error("job failed", exc_info=(kind, value, traceback))
    sys.excepthook = log_uncaught
    if log_path:    # kept open for the job's life: faulthandler writes to it from the signal handler
        global fatal_log
        fatal_log = open(log_path, "a")
        faulthandler.enable(file=fatal_log, all_threads=True)
    return logger

