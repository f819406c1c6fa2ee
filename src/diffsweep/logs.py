"""Job logging: messages, warnings and an uncaught traceback go to the rule's log file too."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


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
    return logger
