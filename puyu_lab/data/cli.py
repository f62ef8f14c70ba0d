"""``puyu-lab data …`` verbs."""
from __future__ import annotations

import argparse


def add_data_commands(sub) -> None:
    return None
