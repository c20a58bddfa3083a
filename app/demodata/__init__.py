"""Demo data shared by the mock portal and the source simulators; the service itself never
imports it."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def load_demo_catalogue() -> dict[str, Any]:
    """The built-in demo catalogue (contract §9): ``procedures``, ``agencies`` and ``accounts``."""
    text = files(__package__).joinpath("catalogue.json").read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise TypeError("catalogue.json must hold a JSON object")
    return data
