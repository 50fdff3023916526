"""Makes `serializers` (project root) and the runtime (template/) importable in plugin tests."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "template"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
