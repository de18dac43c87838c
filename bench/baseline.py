"""``--baseline REF``: the proxy as it was at a git ref, built once per run into a virtualenv of its own so
that the benchmark can measure it beside the current tree, in the same rounds.

The source at REF is exported with ``git archive`` (the repository is left as it was) and installed with pip,
not editable: the virtualenv holds a copy, and its ``translator`` console script imports that copy and
nothing from the working tree. Everything goes under a directory the caller owns and removes (the
fleet's work directory). Starting, pinning and stopping the baseline server is bench/__main__.py's and
bench/fleet.py's job, exactly as for the proxy.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from bench.fleet import ROOT
from bench.scenarios import CLAUDE, OPENAI, RESPONSES

# Exits 0 when the installed translator has the in-flight limit setting (bench/__main__.py, proxy_settings).
_HAS_LIMIT = ("import sys\nfrom translator.config import ServerSettings\n"
              "sys.exit(0 if 'max_concurrent_requests' in ServerSettings.model_fields else 1)")
# Exits 0 when it has the /v1/responses route (added in e6b4478): without it, the baseline has no Responses target.
_HAS_RESPONSES = "import translator.server.responses_route"


@dataclass(frozen=True, slots=True)
class Baseline:
    ref: str  # as given on the command line
    commit: str  # the short hash it resolved to
    python: Path  # the baseline virtualenv's interpreter
    has_limit: bool  # its config has server.max_concurrent_requests
    routes: tuple[str, ...] = (OPENAI, CLAUDE, RESPONSES)  # the benchmark's routes it serves


def build(ref: str, workdir: Path) -> Baseline:
    """Export REF into ``workdir``, install it into a new virtualenv there, and check its console script."""
    commit = _git("rev-parse", "--short", "--verify", f"{ref}^{{commit}}").decode().strip()
    source, venv = workdir / "baseline-src", workdir / "baseline-venv"
    _export(commit, source)
    # The interpreter running the benchmark makes the virtualenv: the baseline runs on the same Python.
    _run([sys.executable, "-m", "venv", str(venv)], workdir)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", str(source)], workdir)
    if not (venv / "bin" / "translator").exists():
        raise RuntimeError(f"the translator at {commit} installs no `translator` console script")
    routes = (OPENAI, CLAUDE, *((RESPONSES,) if _succeeds(python, _HAS_RESPONSES, workdir) else ()))
    return Baseline(ref, commit, python, _succeeds(python, _HAS_LIMIT, workdir), routes)


def _succeeds(python: Path, code: str, cwd: Path) -> bool:
    """Whether ``code`` exits 0 under the baseline's interpreter (outside the working tree, as in ``_run``)."""
    return subprocess.run([str(python), "-c", code], cwd=cwd, capture_output=True).returncode == 0


def _export(commit: str, dest: Path) -> None:
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(_git("archive", "--format=tar", commit))) as archive:
        archive.extractall(dest, filter="data")


def _git(*args: str) -> bytes:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"git {' '.join(args)}: {e.stderr.decode(errors='replace').strip()}") from e


def _run(argv: list[str], cwd: Path) -> None:
    """A build step, run outside the working tree (``python -m`` puts the current directory on the path);
    its output is kept out of the benchmark's log unless it fails. It is its own process group, killed
    whole when the benchmark is interrupted (pip starts a build backend of its own)."""
    with subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            _, err = proc.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{err[-2000:]}")
