"""Shared by the benchmarks: the labelled Stack Overflow questions of ../shared/data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEVQUARRY_SHARED_DATA", ROOT.parent / "shared" / "data"))


def labelled_questions() -> pd.DataFrame:
    path = SHARED / "stackoverflow-openai-api" / "questions_labelled.csv.gz"
    if not path.exists():
        sys.exit(f"needs {path}")
    df = pd.read_csv(path)
    df["body"] = df["body"].fillna("")
    return df
