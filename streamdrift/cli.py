"""The ``streamdrift`` command: run, demo, tail, replay, validate."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .config import ConfigError


def _add_broker(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", help="Kafka bootstrap HOST:PORT (env STREAMDRIFT_BROKER; default localhost:9092)")
    p.add_argument("--config", help="TOML settings file (env STREAMDRIFT_CONFIG)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamdrift", description="Drift detection for ML feature events on Kafka.")
    parser.add_argument("--version", action="version", version=f"streamdrift {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the processor (a faust worker)")
    _add_broker(run)
    run.add_argument("--reference", help="training data (CSV, JSONL, Parquet) used as the fixed reference")
    run.add_argument("--web-port", type=int, help="port of /health and /metrics (default 6066)")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    demo = sub.add_parser("demo", help="embedded broker + synthetic drifting events + the processor")
    demo.add_argument("--events", type=int, default=9000, help="events per model")
    demo.add_argument("--timeout", type=float, default=50.0, help="stop after this many seconds at most")

    tail = sub.add_parser("tail", help="print drift alerts and retrain requests as they arrive")
    _add_broker(tail)
    tail.add_argument("--from-beginning", action="store_true", help="also print what was published before")
    tail.add_argument("--json", action="store_true", help="print raw JSON lines instead of a table")
    tail.add_argument("--max", type=int, help="stop after this many messages")
    tail.add_argument("--seconds", type=float, help="stop after this many seconds")

    replay = sub.add_parser("replay", help="replay a historical log into Kafka or offline")
    from .replay import add_arguments
    add_arguments(replay)

    validate = sub.add_parser("validate", help="adversarial validation: can a classifier tell two datasets apart? "
                              "(exit 0: no shift, 1: shift, 2: bad input)")
    from .validate import add_arguments as add_validate_arguments
    add_validate_arguments(validate)

    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            from .config import load
            from .logging_setup import configure

            config = load(args.config, broker=args.broker, web_port=args.web_port)
            configure(config.log_format, args.log_level)
            references = None
            if args.reference:
                from .references import load_references
                references = load_references(args.reference)
            from .stream.app import run as run_worker
            return run_worker(config, references, loglevel=args.log_level)
        if args.command == "demo":
            from .demo import run_demo
            return run_demo(events_per_model=args.events, timeout_s=args.timeout)
        if args.command == "tail":
            from .config import load
            from .tail import tail as run_tail
            config = load(args.config, broker=args.broker)
            return run_tail(config, from_beginning=args.from_beginning, as_json=args.json,
                            max_messages=args.max, seconds=args.seconds)
        if args.command == "replay":
            from .replay import main as replay_main
            return replay_main(args)
        if args.command == "validate":
            from .validate import main as validate_main
            return validate_main(args)
    except ConfigError as exc:
        print(f"streamdrift: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
