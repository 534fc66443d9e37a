"""``streamdrift replay``: historical logs into Kafka, or through the detectors offline.

Offline, the log goes through the very ``DriftPipeline`` that ``streamdrift run`` uses, in the
log's order, so the alerts and retrain requests written are the ones the processor would
publish for the same input order (ids included; ``detected_at`` names the file and line instead
of a Kafka partition and offset).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from itertools import repeat
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .config import ConfigError, load
from .events import Record
from .logs import ColumnMapping, JsonlLines, LogReader, jsonl_problem
from .model_monitors import group_key
from .pipeline import DriftPipeline
from .process_tuning import limit_blas_threads, tune_gc

BATCH = 20_000
#: Points kept per feature for the report's plots (older points are thinned as the log grows).
TRACE_POINTS = 2048


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", nargs="+", help="JSONL, CSV or Parquet files (gzip ok), directories or globs")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--to-kafka", action="store_true", help="produce the log to the input topic")
    mode.add_argument("--offline", action="store_true", help="run the detectors without Kafka")
    p.add_argument("--broker", help="Kafka bootstrap HOST:PORT (env STREAMDRIFT_BROKER)")
    p.add_argument("--config", help="TOML settings file (env STREAMDRIFT_CONFIG)")
    p.add_argument("--topic", help="topic to produce to (default: the config's features topic)")
    p.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    p.add_argument("--speed", type=float, help="speed-up of the log's event-time spacing (60 = an hour a minute)")
    p.add_argument("--skip", type=int, default=0, help="resume: skip this many events first")
    p.add_argument("--alerts", help="offline: write alerts here (JSONL)")
    p.add_argument("--retrain", help="offline: write retrain requests here (default: <alerts>.retrain.jsonl)")
    p.add_argument("--decisions", help="offline: write model-version decisions here (default: <alerts>.decisions.jsonl)")
    p.add_argument("--rejected", help="offline: write rejected events and bad rows here (JSONL)")
    p.add_argument("--report", help="offline: write an HTML report with plots here")
    p.add_argument("--changes", help="offline backtest: known change points (CSV/JSONL: model, feature, index)")
    p.add_argument("--reference", help="training data used as the fixed reference")
    p.add_argument("--model-column", default="model", help="CSV/Parquet: column naming the model")
    p.add_argument("--model-name", help="CSV/Parquet: the model of every row (log without a model column)")
    p.add_argument("--ts-column", default="ts", help="CSV/Parquet: column with the event time")
    p.add_argument("--features", help="CSV/Parquet: comma-separated feature columns (default: all others)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def mapping_from(args) -> ColumnMapping:
    return ColumnMapping(model=args.model_column, ts=args.ts_column, model_name=args.model_name,
                         features=tuple(args.features.split(",")) if args.features else None)


def main(args) -> int:
    try:
        config = load(args.config, broker=args.broker)
    except ConfigError:
        raise
    if args.offline:
        if not args.alerts:
            print("streamdrift replay --offline needs --alerts OUT.jsonl", file=sys.stderr)
            return 2
        return offline(args, config)
    return asyncio.run(to_kafka(args, config))


# -- offline -------------------------------------------------------------------------------------
class Traces:
    """Thinned value streams of every feature, for the report's plots (bounded memory).

    A stream counts the values its monitor is given, as ``intake.columns_of`` makes them: from
    the first processed event of its model and segment that carries a value for the feature, one
    value per processed event of theirs (null or absent: a missing value). Rejected events are in
    no stream, so a point's position is the value index that the monitor's alerts name.
    """

    def __init__(self) -> None:
        self.points: dict[tuple, list] = defaultdict(list)
        self.stride: dict[tuple, int] = defaultdict(lambda: 1)
        #: Values of each stream so far: the monitor's count (``FeatureMonitor.seen``).
        self.count: dict[tuple, int] = {}
        #: The features whose streams have started, per (model, segment), in order of start.
        self.started: dict[tuple, list[str]] = defaultdict(list)

    def add(self, event: dict) -> None:
        """One event the pipeline processed (not rejected); a late label carries no feature."""
        features = event.get("features")
        if type(features) is not dict:
            return
        version = event.get("model_version")
        group = group_key(event.get("model"), event.get("segment"), version if type(version) is str else None)
        started = self.started[group]
        for name, value in features.items():
            if value is not None and (*group, name) not in self.count:
                self.count[(*group, name)] = 0
                started.append(name)
        for name in started:
            key = (*group, name)
            n = self.count[key]
            self.count[key] = n + 1
            if n % self.stride[key]:
                continue
            points = self.points[key]
            points.append((n, features.get(name)))
            if len(points) >= TRACE_POINTS:
                self.points[key] = points[::2]
                self.stride[key] *= 2


class VersionLosses:
    """Each model version's losses on its labelled predictions, thinned, for the report's plot
    of both versions' loss over time (bounded memory), and where each decision was made.

    The x axis counts the labels that met a prediction of one of the model's versions (one label
    of a shadow deployment meets two), in input order.
    """

    def __init__(self) -> None:
        #: model -> [(label index, {version: loss})], every ``stride``-th label.
        self.points: dict[str, list] = defaultdict(list)
        self.stride: dict[str, int] = defaultdict(lambda: 1)
        self.count: dict[str, int] = defaultdict(int)
        #: decision id -> the label index it was made at.
        self.decided_at: dict[str, int] = {}

    def add(self, version_losses) -> None:
        for model, _, by_version, decided in version_losses:
            n = self.count[model]
            self.count[model] = n + 1
            for decision in decided:
                self.decided_at[decision] = n
            if n % self.stride[model]:
                continue
            points = self.points[model]
            points.append((n, by_version))
            if len(points) >= TRACE_POINTS * 4:
                self.points[model] = points[::2]
                self.stride[model] *= 2

    def traces(self, pipeline: DriftPipeline) -> list:
        from .report import VersionTrace

        out = []
        for model in sorted(self.points):
            versions = pipeline.versions.get(model)
            names = versions.seen if versions is not None else sorted({v for _, lv in self.points[model] for v in lv})
            series = {}
            for version in names:
                at = [(n, lv[version]) for n, lv in self.points[model] if version in lv]
                if at:
                    series[version] = (np.array([n for n, _ in at], dtype=float), np.array([v for _, v in at]))
            out.append(VersionTrace(model, series, self.count[model], dict(self.decided_at)))
        return out


def offline(args, config) -> int:
    console = Console(stderr=True)
    references = None
    if args.reference:
        from .references import load_references
        references = load_references(args.reference)
    pipeline = DriftPipeline(config, references)
    tune_gc()
    limit_blas_threads()
    # JSONL lines go to the pipeline unparsed: its scanner reads a batch from the bytes, and what
    # it rejects for not being JSON (or not an object) counts as a bad row, as the reader says it
    # (``jsonl_problem``). The report's traces read each event's fields: then the reader parses.
    unparsed = not args.report
    reader = LogReader(args.log, mapping_from(args), parse_jsonl=not unparsed)
    alerts_path = Path(args.alerts)
    retrain_path = Path(args.retrain) if args.retrain else alerts_path.with_suffix(".retrain.jsonl")
    decisions_path = Path(args.decisions) if getattr(args, "decisions", None) else \
        alerts_path.with_suffix(".decisions.jsonl")
    traces = Traces() if args.report else None
    totals = {"rows": 0, "processed": 0, "rejected": 0, "bad_rows": 0, "alerts": 0, "retrain_requests": 0,
              "below_effect_floor": 0, "decisions": 0}
    all_alerts, all_requests, all_below, all_decisions = [], [], [], []
    losses = VersionLosses() if args.report else None
    rejected_file = open(args.rejected, "wb") if args.rejected else None
    started = time.perf_counter()
    with open(alerts_path, "wb") as alerts_out, open(retrain_path, "wb") as retrain_out, \
            open(decisions_path, "wb") as decisions_out:
        batch: list[Record] = []

        def flush() -> None:
            out = pipeline.process(batch)
            for notice in out.notices:
                print(f"warning: {notice}", file=sys.stderr)
            if unparsed:
                out.rejected = not_bad_rows(out.rejected)
            totals["processed"] += out.processed
            totals["rejected"] += len(out.rejected)
            if traces is not None:
                # Only what the monitors took: a rejected event is a value of no stream.
                rejected = {id(r.record) for r in out.rejected}
                for record in batch:
                    if id(record) not in rejected:
                        traces.add(record.data)
            for alert in out.alerts:
                alerts_out.write(orjson.dumps(alert) + b"\n")
            for request in out.retrain_requests:
                retrain_out.write(orjson.dumps(request) + b"\n")
            for decision in out.decisions:
                decisions_out.write(orjson.dumps(decision) + b"\n")
            totals["decisions"] += len(out.decisions)
            all_decisions.extend(out.decisions)
            if losses is not None:
                losses.add(out.version_losses)
            totals["alerts"] += len(out.alerts)
            totals["retrain_requests"] += len(out.retrain_requests)
            totals["below_effect_floor"] += len(out.below_effect_floor)
            if args.report or args.changes:
                all_alerts.extend(out.alerts)
                all_requests.extend(out.retrain_requests)
            if args.report:
                all_below.extend(out.below_effect_floor)
            if rejected_file:
                for r in out.rejected:
                    rejected_file.write(orjson.dumps({"source": r.record.topic, "line": r.record.offset,
                                                      "reason": r.reason, "raw": r.record.value.decode("utf-8", "replace")}) + b"\n")
            batch.clear()

        def bad_row(source: str, line: int, error: str) -> None:
            totals["bad_rows"] += 1
            if rejected_file:
                rejected_file.write(orjson.dumps({"source": source, "line": line, "reason": error}) + b"\n")

        def not_bad_rows(rejected: list) -> list:
            """The rejections of events; an unparsed line that is not an event is a bad row."""
            kept = []
            for r in rejected:
                error = jsonl_problem(r.record.value) if r.record.data is None else None
                if error is None:
                    kept.append(r)
                else:
                    reader.summary.record_bad(r.record.topic, r.record.offset, error)
                    bad_row(r.record.topic, r.record.offset, error)
            return kept

        append = batch.append  # (a row costs about a microsecond here: no more than it must)
        for row in reader.runs():
            if type(row) is JsonlLines:  # unparsed JSONL lines, a run at a time: records made in C
                made = list(map(Record, row.raws, repeat(None), repeat(row.source), repeat(0), row.lines))
                at = 0
                while at < len(made):
                    take = BATCH - len(batch)
                    batch.extend(made[at:at + take])
                    at += take
                    if len(batch) >= BATCH:
                        flush()
                continue
            if row.error is not None:
                bad_row(row.source, row.line, row.error)
                continue
            append(Record(row.raw, None, row.source, 0, row.line, None, row.event))
            if len(batch) >= BATCH:
                flush()
        if batch:
            flush()
        totals["rows"] = reader.summary.rows
    if rejected_file:
        rejected_file.close()
    elapsed = time.perf_counter() - started
    summary = reader.summary
    console.print(f"replayed {totals['rows']:,} rows in {elapsed:.1f} s ({totals['rows'] / max(elapsed, 1e-9):,.0f}/s): "
                  f"{totals['processed']:,} processed, {totals['rejected']:,} rejected, {totals['bad_rows']:,} bad rows; "
                  f"{totals['alerts']:,} alerts -> {alerts_path}, {totals['retrain_requests']:,} retrain requests -> "
                  f"{retrain_path}"
                  + (f"; {totals['decisions']:,} model-version decisions -> {decisions_path}"
                     if totals["decisions"] or pipeline.versions else "")
                  + (f"; {totals['below_effect_floor']:,} detections below min_effect not published"
                     if totals["below_effect_floor"] else ""))
    for source, line, error in summary.bad_examples[:10]:
        console.print(f"  bad row {source}:{line}: {error}")
    if args.changes:
        from .backtest import detector_totals, format_table, load_changes, score_detections
        rows = score_detections(all_alerts, load_changes(args.changes))
        print(format_table(rows))
        print()
        print(format_table(detector_totals(rows)))
    if args.report:
        write_report(args.report, all_alerts, all_requests, traces, pipeline, totals, args.log, all_below,
                     all_decisions, losses)
        console.print(f"report -> {args.report}")
    return 0


def write_report(path, alerts, requests, traces: Traces, pipeline: DriftPipeline, totals: dict, logs,
                 below_effect_floor=(), decisions=(), losses: "VersionLosses | None" = None) -> None:
    from .report import ReplayCounts, render_report

    counts = ReplayCounts(events_read=totals["rows"], processed=totals["processed"], rejected=totals["rejected"],
                          unreadable=totals["bad_rows"])
    render_report(path, alerts, requests, feature_traces(alerts, traces, pipeline),
                  title=f"streamdrift replay of {', '.join(map(str, logs))}", counts=counts,
                  models={key[0] for key in pipeline.models}, below_effect_floor=below_effect_floor,
                  decisions=decisions, version_traces=losses.traces(pipeline) if losses is not None else ())


def feature_traces(alerts, traces: Traces, pipeline: DriftPipeline) -> list:
    """The traces of every drifted feature, of the kind its monitor watched (numeric or
    categorical), plus its missing rate when that drifted."""
    by_feature = defaultdict(list)
    for alert in alerts:
        by_feature[(*group_key(alert["model"], alert["segment"], alert.get("model_version")), alert["feature"])].append(alert)
    out = []
    for key in sorted(by_feature, key=lambda k: tuple(str(x) for x in k)):
        feature = key[-1]
        group = pipeline.models.get(key[:-1])
        kind = group.types.get(("feature", feature)) if group else None
        points = traces.points.get(key)
        if kind is None or not points:
            continue  # not a feature stream (prediction, label...) or never watched
        out.extend(_traces_of(group, feature, kind, points, traces.stride[key], traces.count[key],
                              by_feature[key]))
    return out


def _traces_of(group, feature: str, kind: str, points: list, stride: int, count: int, alerts: list) -> list:
    from .report import FeatureTrace

    positions = np.array([n for n, _ in points], dtype=float)
    missing = np.array([v is None for _, v in points])
    if kind == "numeric":
        values = np.array([np.nan if v is None else v for _, v in points], dtype=float)
    else:
        values = np.array(["(missing)" if v is None else str(v) for _, v in points], dtype=object)
    monitor = group.monitors.get(("feature", feature))
    span = None if feature in group.reference else _warm_up_span(monitor, positions, missing, stride)
    value_alerts = [a for a in alerts if a["kind"] != "missing_rate"]
    found = [FeatureTrace(group.model, group.segment, feature, kind, positions, values,
                          _band(value_alerts, kind, monitor), value_alerts, span, count)]
    rate_alerts = [a for a in alerts if a["kind"] == "missing_rate"]
    if rate_alerts:
        found.append(FeatureTrace(group.model, group.segment, feature, "missing_rate", positions,
                                  missing.astype(float), _band(rate_alerts, "missing_rate", monitor),
                                  rate_alerts, span, count))
    return found


def _band(alerts: list, kind: str, monitor) -> tuple[float, float, float] | None:
    """The reference the first alert was measured against, else the monitor's own while it is
    still its first: a monitor re-arms after a detection and takes a new reference from the
    drifted data, which would hide the drift."""
    if alerts:
        reference = min(alerts, key=lambda a: a["index"]).get("reference") or {}
        rate, quantiles = reference.get("missing_rate"), reference.get("quantiles") or {}
    elif monitor is not None and monitor.calibrations == 1:
        rate = monitor.reference_missing / max(1, monitor.reference_total)
        ref = getattr(monitor, "reference", None)  # categorical monitors hold counts, not values
        quantiles = {} if ref is None else dict(zip(("p05", "p50", "p95"),
                                                    np.quantile(ref.values, (0.05, 0.5, 0.95))))
    else:
        return None
    if kind == "missing_rate" and rate is not None:
        return float(rate), float(rate), float(rate)
    if kind == "numeric" and all(q in quantiles for q in ("p05", "p50", "p95")):
        return float(quantiles["p05"]), float(quantiles["p50"]), float(quantiles["p95"])
    return None


def _warm_up_span(monitor, positions: np.ndarray, missing: np.ndarray, stride: int):
    """Value indexes of the warm-up the first reference was taken from (its first
    ``reference_size`` present values), or None when the reference slides."""
    if monitor is None or monitor.settings.sliding_reference:
        return None
    present = positions[~missing]
    # Each point stands for ``stride`` values of the stream: the trace is thinned.
    needed = -(-monitor.settings.reference_size // stride)
    if present.size < needed:
        return None
    return float(positions[0]), float(present[needed - 1] + 1)


# -- into Kafka ----------------------------------------------------------------------------------
async def to_kafka(args, config) -> int:
    from aiokafka import AIOKafkaProducer

    from .stream.topics import ensure_topics

    topic = args.topic or config.topics.features
    await ensure_topics(config.broker, {topic: config.topics.partitions}, security=config.security_options())
    producer = AIOKafkaProducer(bootstrap_servers=config.broker, linger_ms=5, max_batch_size=256 * 1024,
                                **config.security_options())
    await producer.start()
    reader = LogReader(args.log, mapping_from(args))
    sent = skipped = 0
    started = time.monotonic()
    first_ts = None
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]:>10} ev/s"), TimeRemainingColumn(), disable=args.quiet,
                        console=Console(stderr=True))
    try:
        with progress:
            task = progress.add_task("replay", total=None, rate="")
            for row in reader:
                if row.event is None:
                    continue
                if skipped < args.skip:
                    skipped += 1
                    continue
                if args.speed and row.event.get("ts") is not None:
                    from .events import parse_ts
                    ts = parse_ts(row.event["ts"])
                    if ts is not None:
                        first_ts = ts if first_ts is None else first_ts
                        due = started + (ts - first_ts) / args.speed
                        if due > time.monotonic():
                            await asyncio.sleep(due - time.monotonic())
                elif args.rate:
                    due = started + sent / args.rate
                    if due > time.monotonic():
                        await asyncio.sleep(due - time.monotonic())
                await producer.send(topic, value=row.raw, key=str(row.event.get("model", "")).encode())
                sent += 1
                if sent % 5000 == 0:
                    progress.update(task, completed=sent, rate=f"{sent / (time.monotonic() - started):,.0f}")
            await producer.flush()
            progress.update(task, completed=sent, rate=f"{sent / max(time.monotonic() - started, 1e-9):,.0f}")
    finally:
        await producer.stop()
    summary = reader.summary
    Console(stderr=True).print(
        f"sent {sent:,} events to {topic} in {time.monotonic() - started:.1f} s; skipped {skipped:,} (--skip); "
        f"{summary.bad_rows:,} bad rows not sent" + "".join(f"\n  bad row {s}:{l}: {e}" for s, l, e in summary.bad_examples[:10]))
    return 0
