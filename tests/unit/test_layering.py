"""The conversion layer is pure: importing it must not load aiohttp (or anything doing I/O)."""

from __future__ import annotations

import subprocess
import sys


def test_convert_imports_no_aiohttp() -> None:
    code = (
        "import sys, translator.convert; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'translator') "
        "and not m.startswith(('translator.convert', 'translator.errors')) and m != 'translator'); "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
