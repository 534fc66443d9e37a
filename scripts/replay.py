#!/usr/bin/env python3
"""``streamdrift replay`` as a plain script: historical logs into Kafka, or through the detectors offline.

    python scripts/replay.py LOG --offline --alerts OUT.jsonl [--report REPORT.html] [--changes FILE]
    python scripts/replay.py LOG --to-kafka [--broker HOST:PORT] [--rate N | --speed X] [--skip N]

Every option is the command's (``streamdrift replay --help``).
"""

from __future__ import annotations

import sys

from streamdrift.cli import main

if __name__ == "__main__":
    sys.exit(main(["replay", *sys.argv[1:]]))
