"""The conversion layer is pure: importing it must not load aiohttp (or anything doing I/O), nor any of the
proxy's modules but the error tree and the model profiles (both neutral: no I/O, no configuration)."""

from __future__ import annotations

import subprocess
import sys


def test_convert_imports_no_aiohttp() -> None:
    code = (
        "import sys, translator.convert; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'translator') "
        "and not m.startswith(('translator.convert', 'translator.errors', 'translator.profiles')) "
        "and m != 'translator'); "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_config_imports_no_conversion_code() -> None:
    # The model profiles config resolves live in translator.profiles, which both sides read.
    code = "import sys, translator.config; print(sorted(m for m in sys.modules if m.startswith('translator.convert')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
