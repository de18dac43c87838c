"""``python -m bench.launch [--cpu N] -- COMMAND...``: pin to a CPU, arrange to die with the parent
(PR_SET_PDEATHSIG survives exec), then become COMMAND. The benchmark starts every child through this,
so nothing has to run between fork and exec in its own (multi-threaded, event-looped) process."""

from __future__ import annotations

import argparse
import os

from bench.fleet import die_with_parent, pin_self


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.launch")
    parser.add_argument("--cpu", type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    die_with_parent()
    pin_self(args.cpu)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
