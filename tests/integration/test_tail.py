"""``streamdrift tail`` prints what the system says: alerts and retrain requests."""

from __future__ import annotations

import subprocess
import sys

import orjson

from streamdrift.stream.topics import ensure_topics_sync

from .workers import config_text, produce


def test_tail_prints_alerts_and_retrain_requests(broker, tmp_path, unique_topic):
    prefix = unique_topic("t")
    ensure_topics_sync(broker.bootstrap, {f"{prefix}.alerts": 4, f"{prefix}.retrain": 4})
    config = tmp_path / "streamdrift.toml"
    config.write_text(config_text(prefix))
    alert = {"alert_id": "a-123", "model": "fraud-v3", "segment": None, "feature": "amount", "kind": "feature",
             "detector": "ks", "direction": "up", "severity": "critical", "index": 5120,
             "reference": {"mean": 10.0}, "window": {"mean": 14.5}}
    request = {"request_id": "r-9", "model": "fraud-v3", "reason": "2 features drifted within 3600 s: amount, country",
               "severity": "warning"}
    produce(broker.bootstrap, f"{prefix}.alerts", [(b"fraud-v3", orjson.dumps(alert))])
    produce(broker.bootstrap, f"{prefix}.retrain", [(b"fraud-v3", orjson.dumps(request))])
    result = subprocess.run([sys.executable, "-m", "streamdrift.cli", "tail", "--broker", broker.bootstrap,
                             "--config", str(config), "--from-beginning", "--max", "2", "--seconds", "30"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "fraud-v3 amount (feature) ks up at value 5120" in result.stdout
    assert "a-123" in result.stdout and "CRITICAL" in result.stdout
    assert "RETRAIN" in result.stdout and "r-9" in result.stdout and "2 features drifted" in result.stdout
    as_json = subprocess.run([sys.executable, "-m", "streamdrift.cli", "tail", "--broker", broker.bootstrap,
                              "--config", str(config), "--from-beginning", "--json", "--max", "2", "--seconds", "30"],
                             capture_output=True, text=True, timeout=60)
    lines = [orjson.loads(line) for line in as_json.stdout.splitlines() if line.strip()]
    assert {line.get("alert_id") or line.get("request_id") for line in lines} == {"a-123", "r-9"}
