"""The standard import block every block sees in scope (Roboflow-compatible)."""

from __future__ import annotations

import importlib

PRELUDE_SOURCE = f"""\
from typing import Any, List, Dict, Set, Optional
import supervision as sv
import numpy as np
import math
import time
import json
import os
import requests
import cv2
import shapely
from datetime import datetime
from {__package__}.entities import Batch, WorkflowImageData, BlockResult, debug_traces
"""

# Compiled once: exec'ing an already-imported module is a dict lookup per name.
PRELUDE_CODE = compile(PRELUDE_SOURCE, "<blockgate-prelude>", "exec")

# Imported up front by the worker so the first load pays no import cost.
HEAVY_MODULES = ("numpy", "cv2", "supervision", "shapely", "requests")


def preload() -> None:
    for name in HEAVY_MODULES:
        importlib.import_module(name)
