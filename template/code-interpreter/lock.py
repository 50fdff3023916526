"""Rewrites template/code-interpreter/wheelhouse.txt: what code-interpreter mode installs.

    .venv-code-interpreter/bin/python template/code-interpreter/lock.py

Run it with the stand-in's copy of E2B's stock code-interpreter environment (built by
template/setup.sh from stock-requirements.txt), after changing template/requirements.txt or
stock-requirements.txt, then run setup again. It asks that environment the same question a
sandbox answers in prepare() (runtime.interpreter.missing_requirements: blockgate's pinned
line of each module a block needs that does not import), then lets pip resolve those lines
against it (a dry run, with PyPI) and pins every distribution pip would add, with the
sha256 of its wheel: the requirement lines themselves and whichever of their dependencies
the stock environment lacks. Nothing else: what the template has, a block gets as it is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE_DIR = HERE.parent
OUT = HERE / "wheelhouse.txt"

HEADER = """\
# The wheels code-interpreter mode installs into E2B's stock code-interpreter-v1 sandbox,
# which has no internet (BLOCKGATE_E2B_ALLOW_INTERNET=0): blockgate's own pins
# (template/requirements.txt) of the packages that template lacks, and the dependencies of
# those it lacks too. Written by template/code-interpreter/lock.py; do not edit by hand.
# template/setup.sh downloads them for the sandbox's CPython {python} on x86_64 (manylinux)
# into .wheelhouse/code-interpreter; prepare() (src/backends/e2b/runtime-interpreter.ts)
# uploads them and runs `pip install --no-index --find-links` there.
"""


def main() -> None:
    if sys.version_info[:2] != (3, 13):
        sys.exit(
            "run this with the stand-in's stock environment: .venv-code-interpreter/bin/python"
        )
    sys.path[:0] = [str(TEMPLATE_DIR), str(TEMPLATE_DIR.parent)]
    from runtime.interpreter import missing_requirements

    lines = missing_requirements(str(TEMPLATE_DIR / "requirements.txt"))
    if not lines:
        sys.exit("the stock environment already has everything a block needs: nothing to lock")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--report",
            "-",
            *lines,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(result.stdout)
    pins = []
    for item in report["install"]:
        metadata, archive = item["metadata"], item["download_info"]["archive_info"]
        sha256 = archive["hashes"]["sha256"]
        pins.append(f"{metadata['name'].lower()}=={metadata['version']} --hash=sha256:{sha256}")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    OUT.write_text(HEADER.format(python=python) + "".join(f"{pin}\n" for pin in sorted(pins)))
    print(
        f"wrote {OUT.relative_to(TEMPLATE_DIR.parent)}: {len(pins)} wheels for {', '.join(lines)}"
    )


if __name__ == "__main__":
    main()
