"""Command line: `python -m mobilevlm_mini COMMAND --help` (or the `mobilevlm-mini` script)."""

from __future__ import annotations

import argparse
import sys


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print one line per requirement; exit 1 if any fails."""
    from mobilevlm_mini.doctor import report, run_checks

    checks = run_checks(compute_seconds=args.seconds)
    print(report(checks))
    return 0 if all(check.ok for check in checks) else 1


def build_parser() -> argparse.ArgumentParser:
    """The parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="python -m mobilevlm_mini", description="mobilevlm-mini: a tiny MobileVLM on your CPU.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor = commands.add_parser("doctor", help="check that this machine is ready for the course")
    doctor.add_argument("--seconds", type=float, default=5.0, help="length of the compute benchmark (default 5)")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the chosen command."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
