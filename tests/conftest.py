"""Shared fixtures. Tests run on the CPU, deterministically, with the library from src/."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


@pytest.fixture
def root() -> Path:
    return ROOT
