"""Shared fixtures. No test may touch the network: the Hub is switched to offline mode."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

from survey_lib.world.text import TextWorld  # noqa: E402


@pytest.fixture(scope="session")
def world():
    return TextWorld(seed=0)
