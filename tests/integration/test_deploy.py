"""The production set-up (Dockerfile, docker-compose.yml, deploy/) against the code it deploys.

There is no Docker engine here, so nothing is built or started by Docker. Instead:
- Debian's ``docker-compose config`` validates and normalises docker-compose.yml (the test
  installs the package when the binary is missing), and every streamdrift service's command and
  environment goes through the real CLI parser and ``streamdrift.config.load``, with the
  config file it mounts, to the exact ``Config`` the container would run with;
- Prometheus' ``promtool`` (unpacked from Debian's package, not installed as a service) checks
  the scrape config, the alert rules and every PromQL expression of the Grafana dashboard;
- the Dockerfile's COPY and ``pip install`` steps run as written into a fresh virtualenv;
- the topic-init script runs against a recording stand-in for ``kafka-topics.sh``;
- the sample log of the replay profile goes through the detectors offline and, end to end,
  through a processor started with the compose environment on the embedded broker.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

import orjson
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import streamdrift
from streamdrift import cli
from streamdrift.config import ENVIRONMENT, Config, load
from streamdrift.stream.broker import EmbeddedBroker
from streamdrift.stream.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
DEPLOY = ROOT / "deploy"
SAMPLE = DEPLOY / "sample" / "features.jsonl.gz"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamdrift.json"
README_START, README_END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"

# Variables the config itself does not read but `streamdrift run` does (the file's path).
CLI_ENVIRONMENT = {"STREAMDRIFT_CONFIG"}
# What the dashboard must show (issue 7): metric -> why.
DASHBOARD_MUST_SHOW = {
    "streamdrift_events_in_total": "events per second in",
    "streamdrift_events_rejected_total": "events rejected",
    "streamdrift_consumer_lag": "consumer lag",
    "streamdrift_alerts_total": "alerts per model and feature",
    "streamdrift_retrain_requests_total": "retrain requests",
    "streamdrift_model_decisions_total": "model-version decisions",
    "streamdrift_model_version_loss": "loss per model version",
    "streamdrift_processing_latency_seconds_bucket": "processing latency",
}


# -- tools -------------------------------------------------------------------------------------
def _apt_install(package: str) -> None:
    """``apt-get install`` one Debian package, refreshing the package lists first if needed."""
    if os.geteuid() != 0:
        pytest.fail(f"{package} is missing and installing it needs root: sudo apt-get install -y {package}")
    policy = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True).stdout
    if "Candidate:" not in policy or "Candidate: (none)" in policy:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"apt-get install {package} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Debian's docker-compose (1.29): validates compose files without a Docker engine."""
    binary = shutil.which("docker-compose")
    if binary is None:
        _apt_install("docker-compose")
        binary = shutil.which("docker-compose")
    assert binary, "docker-compose is still not on PATH after apt-get install docker-compose"
    return binary


@pytest.fixture(scope="session")
def promtool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """promtool from Debian's prometheus package, unpacked (not installed: no service starts)."""
    found = shutil.which("promtool")
    if found:
        return found
    cache = ROOT / "build" / "test-tools"
    binary = cache / "usr" / "bin" / "promtool"
    if not binary.exists():
        download = tmp_path_factory.mktemp("promtool")
        fetch = subprocess.run(["apt-get", "download", "prometheus"], cwd=download, capture_output=True, text=True)
        if fetch.returncode != 0:  # no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
            fetch = subprocess.run(["apt-get", "download", "prometheus"], cwd=download, capture_output=True,
                                   text=True)
        assert fetch.returncode == 0, f"apt-get download prometheus failed:\n{fetch.stderr}"
        (deb,) = download.glob("prometheus_*.deb")
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(cache)], check=True)
    return str(binary)


# -- the normalised compose file -------------------------------------------------------------
@pytest.fixture(scope="module")
def compose(docker_compose: str) -> dict:
    """``docker-compose config`` output (anchors merged, defaults interpolated, paths absolute)."""
    # Only PATH and HOME: variables of the caller's shell must not change what is checked.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    done = subprocess.run([docker_compose, "--profile", "replay", "-f", str(COMPOSE_FILE), "config"],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"docker-compose config rejected docker-compose.yml:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


def _streamdrift_services(compose: dict) -> dict[str, dict]:
    """Services that run the image built from this repository's Dockerfile."""
    return {name: s for name, s in compose["services"].items()
            if Path(s.get("build", {}).get("context", "/nonexistent")) == ROOT}


def _processors(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in _streamdrift_services(compose).items() if s["command"][0] == "run"}


def _bind_mounts(service: dict) -> list[tuple[Path, str]]:
    """(host path, container path) of the service's bind mounts."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("/"):
            mounts.append((Path(source), target))
    return mounts


def _host_path(service: dict, container_path: str) -> Path:
    """The host file that a container path of ``service`` is (through its bind mounts)."""
    wanted = PurePosixPath(container_path)
    for source, target in _bind_mounts(service):
        target = PurePosixPath(target)
        if wanted == target:
            return source
        if target in wanted.parents:
            return source / wanted.relative_to(target)
    raise AssertionError(f"{container_path} is not inside any bind mount of the service")


def _environment(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def _host_environment(service: dict) -> dict[str, str]:
    """The service's environment with STREAMDRIFT_CONFIG pointing at the host file it mounts."""
    env = _environment(service)
    if "STREAMDRIFT_CONFIG" in env:
        env["STREAMDRIFT_CONFIG"] = str(_host_path(service, env["STREAMDRIFT_CONFIG"]))
    return env


def _deployed_config(compose: dict) -> Config:
    service = next(iter(_processors(compose).values()))
    return load(environ=_host_environment(service))


@dataclasses.dataclass
class Started:
    """What `streamdrift <command>` would have run, captured instead of running it."""

    command: str
    config: Config | None = None
    args: object = None
    log_format: str | None = None
    log_level: str | None = None


def _run_cli(service: dict, monkeypatch: pytest.MonkeyPatch) -> Started:
    """Run the service's command through the real ``streamdrift`` CLI, with its environment,
    up to the point where the worker or the replay would start; return what it was given."""
    import streamdrift.logging_setup
    import streamdrift.replay
    import streamdrift.stream.app

    started = Started(service["command"][0])

    def fake_worker(config, references, loglevel="info"):
        started.config = config
        return 0

    def fake_configure(log_format, level="info"):
        started.log_format, started.log_level = log_format, level

    async def fake_to_kafka(args, config):
        started.args, started.config = args, config
        return 0

    for name in [n for n in os.environ if n.startswith("STREAMDRIFT_")]:
        monkeypatch.delenv(name)
    for name, value in _host_environment(service).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(streamdrift.stream.app, "run", fake_worker)
    monkeypatch.setattr(streamdrift.logging_setup, "configure", fake_configure)
    monkeypatch.setattr(streamdrift.replay, "to_kafka", fake_to_kafka)
    code = cli.main([str(a) for a in service["command"]])
    assert code == 0, f"`streamdrift {shlex.join(service['command'])}` exited with {code}"
    return started


# -- docker-compose.yml ----------------------------------------------------------------------
def test_compose_file_is_valid_and_complete(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "kafka-init", "streamdrift-1", "streamdrift-2", "prometheus", "grafana",
                             "replay"}
    assert services["replay"].get("profiles") == ["replay"]
    assert all(not s.get("profiles") for n, s in services.items() if n != "replay")
    for name, service in services.items():
        for source, target in _bind_mounts(service):
            assert source.exists(), f"{name} mounts {source} at {target}, which does not exist"
            assert ROOT in source.parents, f"{name} mounts {source} from outside the repository"

    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, "KRaft, one combined node"
    assert not any("ZOOKEEPER" in k for k in env), "KRaft mode needs no ZooKeeper"
    assert env["CLUSTER_ID"] and env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert "healthcheck" in kafka
    # Published host ports are local only.
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_two_processor_replicas_in_one_group(compose: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    processors = _processors(compose)
    assert len(processors) == 2, f"expected two processor replicas, found {sorted(processors)}"
    configs = {name: _run_cli(service, monkeypatch).config for name, service in processors.items()}
    assert len({c.group_id for c in configs.values()}) == 1, "both replicas must share a consumer group"
    assert len({c.version for c in configs.values()}) == 1, "both replicas must run the same detector settings"
    host_ports = [p for s in processors.values() for p in s.get("ports", [])]
    assert len(host_ports) == len({p.split(":")[1] for p in host_ports}), "replicas need distinct host ports"
    for name, service in processors.items():
        assert service["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
        assert service["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", ["streamdrift-1", "streamdrift-2", "replay"])
def test_streamdrift_service_agrees_with_cli_and_config(name: str, compose: dict,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    service = _streamdrift_services(compose)[name]
    env = _environment(service)
    known = set(ENVIRONMENT.values()) | CLI_ENVIRONMENT
    unknown = sorted(k for k in env if k.startswith("STREAMDRIFT_") and k not in known)
    assert not unknown, f"{name} sets {unknown}, which streamdrift does not read; it reads {sorted(known)}"

    # The mounted config file parses on its own, without the environment.
    config_file = _host_path(service, env["STREAMDRIFT_CONFIG"])
    load(config_file, environ={})

    started = _run_cli(service, monkeypatch)
    config = started.config
    assert config is not None, f"`streamdrift {shlex.join(service['command'])}` did not get to start"
    kafka_listeners = _environment(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{config.broker}" in kafka_listeners.split(","), (
        f"{name} connects to {config.broker}, which Kafka does not advertise ({kafka_listeners})")
    assert config.log_format == "json", f"{name} must log JSON lines (STREAMDRIFT_LOG_FORMAT=json)"

    if started.command == "run":
        assert started.log_format == "json"
        # The image's HEALTHCHECK reads STREAMDRIFT_WEB_PORT; it must be the port the worker serves.
        assert env.get("STREAMDRIFT_WEB_PORT") == str(config.web_port)
        assert str(config.web_port) in [str(p) for p in service.get("expose", [])]
        assert all(p.split(":")[-1].split("/")[0] == str(config.web_port) for p in service.get("ports", []))
        assert service.get("healthcheck", {}).get("disable") is not True
    else:
        args = started.args
        assert args.to_kafka, "the replay service produces to Kafka"
        for log in args.log:
            assert _host_path(service, log).is_file(), f"{log} is not a file mounted into {name}"
        assert (args.topic or config.topics.features) == _deployed_config(compose).topics.features
        assert args.rate or args.speed, "pace the replay so the dashboards show it arrive"


def test_prometheus_scrapes_every_processor_on_its_web_port(compose: dict, monkeypatch: pytest.MonkeyPatch,
                                                            promtool: str) -> None:
    prometheus = compose["services"]["prometheus"]
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = _host_path(prometheus, config_arg.split("=", 1)[1])
    check = subprocess.run([promtool, "check", "config", str(config_path)], capture_output=True, text=True)
    assert check.returncode == 0, f"promtool check config:\n{check.stdout}\n{check.stderr}"

    scrape = yaml.safe_load(config_path.read_text())
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "streamdrift")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    expected = set()
    for name, service in _processors(compose).items():
        web_port = _run_cli(service, monkeypatch).config.web_port
        expected.add(f"{service.get('hostname', name)}:{web_port}")
    assert targets == expected, f"Prometheus scrapes {sorted(targets)}, the processors serve {sorted(expected)}"


# -- topics ----------------------------------------------------------------------------------
def test_topic_init_creates_the_configured_topics(compose: dict, tmp_path: Path) -> None:
    init = compose["services"]["kafka-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    config = _deployed_config(compose)
    env = _environment(init)
    wanted = {"TOPIC_FEATURES": config.topics.features, "TOPIC_LABELS": config.topics.labels,
              "TOPIC_ALERTS": config.topics.alerts, "TOPIC_RETRAIN_REQUESTS": config.topics.retrain_requests,
              "TOPIC_MODEL_DECISIONS": config.topics.model_decisions,
              "TOPIC_DEAD_LETTER": config.topics.dead_letter, "TOPIC_STATE": config.topics.state}
    for variable, topic in wanted.items():
        assert env.get(variable) == topic, f"kafka-init {variable}={env.get(variable)!r}, the config says {topic!r}"
    # Equal counts: the processors warn about (and never change) a topic with other partitions.
    assert int(env["TOPIC_PARTITIONS"]) == config.topics.partitions
    assert config.topics.partitions % len(_processors(compose)) == 0, "partitions should split evenly"

    # Run the script as the container would, with a stand-in kafka-topics.sh that records calls.
    entrypoint = init["entrypoint"]
    script = _host_path(init, entrypoint[-1])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    stub = bin_dir / "kafka-topics.sh"
    stub.write_text(f'#!/usr/bin/env bash\nprintf "%q " "$@" >> {calls}\necho >> {calls}\n')
    stub.chmod(0o755)
    done = subprocess.run([*entrypoint[:-1], str(script)], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env, "KAFKA_BIN": str(bin_dir)}, timeout=60)
    assert done.returncode == 0, f"create-topics.sh failed:\n{done.stdout}\n{done.stderr}"

    created = {}
    for line in calls.read_text().splitlines():
        argv = shlex.split(line)
        assert argv[:2] == ["--bootstrap-server", env["BOOTSTRAP_SERVER"]]
        if "--create" in argv:
            value = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}
            configs = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--config")
            assert "--if-not-exists" in argv, "re-running the init must not fail on existing topics"
            created[value["--topic"]] = (int(value["--partitions"]), configs)
    assert set(created) == set(wanted.values())
    for topic, (partitions, configs) in created.items():
        assert partitions == config.topics.partitions
        if topic == config.topics.state:
            assert configs.get("cleanup.policy") == "compact", "the state topic must be compacted"
        else:
            assert int(configs["retention.ms"]) >= 24 * 3600 * 1000, f"{topic}: set a retention of a day or more"


# -- Prometheus rules and the Grafana dashboard ---------------------------------------------
@functools.cache
def _exported_metric_names() -> set[str]:
    """Every series name the processor's registry can export (counters as *_total etc.)."""
    names = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        else:
            names.add(family.name)
    return names


def _dashboard_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"variable {variable['name']}", variable["definition"]))
    return found


def _as_promql(expr: str) -> str:
    """A Grafana expression with its variables replaced, as Prometheus would receive it."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__range", "30m").replace("$__interval", "15s")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def test_alert_rules_and_dashboard_queries_are_valid_promql(tmp_path: Path, promtool: str) -> None:
    rules_file = DEPLOY / "prometheus" / "alerts.yml"
    check = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert check.returncode == 0, f"promtool check rules:\n{check.stdout}\n{check.stderr}"

    # promtool checks PromQL in rule files only: wrap the dashboard's queries as recording rules.
    expressions = [(title, expr) for title, expr in _dashboard_expressions() if not expr.startswith("label_values(")]
    recording = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": _as_promql(expr)} for i, (_, expr) in enumerate(expressions)]}]}
    as_rules = tmp_path / "dashboard_rules.yml"
    as_rules.write_text(yaml.safe_dump(recording))
    check = subprocess.run([promtool, "check", "rules", str(as_rules)], capture_output=True, text=True)
    assert check.returncode == 0, f"a dashboard query is not valid PromQL:\n{check.stdout}\n{check.stderr}"

    # Every streamdrift series named in a rule or a panel is one the processor exports.
    rules = yaml.safe_load(rules_file.read_text())
    texts = [r["expr"] for g in rules["groups"] for r in g["rules"]] + [e for _, e in _dashboard_expressions()]
    used = {name for text in texts for name in re.findall(r"\bstreamdrift_\w+", text)}
    unknown = used - _exported_metric_names()
    assert not unknown, f"queries use series that stream/metrics.py does not export: {sorted(unknown)}"


def test_grafana_dashboard_is_provisioned_with_the_required_panels(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    provisioning = _host_path(grafana, "/etc/grafana/provisioning")
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    prometheus_port = compose["services"]["prometheus"]["ports"][0].split(":")[-1].split("/")[0]
    assert datasource["url"] == f"http://prometheus:{prometheus_port}"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "streamdrift.yml").read_text())["providers"]
    assert _host_path(grafana, provider["options"]["path"]) == DASHBOARD.parent
    home = _environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _host_path(grafana, home) == DASHBOARD

    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} is wider than the dashboard"
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], f"panel {panel['title']!r}: unknown datasource"
            assert all(t["datasource"]["uid"] == datasource["uid"] for t in panel["targets"])
    expressions = [e for _, e in _dashboard_expressions()]
    for metric, why in DASHBOARD_MUST_SHOW.items():
        assert any(metric in e for e in expressions), f"the dashboard must show {why} ({metric})"
    assert any("streamdrift_alerts_total" in e and re.search(r"by \(model, feature", e) for e in expressions), \
        "alerts must be broken down per model and feature"


# -- the sample log --------------------------------------------------------------------------
def test_sample_log_makes_alerts_and_retrain_requests_offline(compose: dict, tmp_path: Path) -> None:
    assert SAMPLE.stat().st_size < 1_000_000
    replay = compose["services"]["replay"]
    config_file = _host_path(replay, _environment(replay)["STREAMDRIFT_CONFIG"])
    alerts = tmp_path / "alerts.jsonl"
    code = cli.main(["replay", str(SAMPLE), "--offline", "--alerts", str(alerts), "--config", str(config_file),
                     "--quiet"])
    assert code == 0
    found = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    requests = [orjson.loads(line) for line in alerts.with_suffix(".retrain.jsonl").read_bytes().splitlines()]
    # deploy/sample/make_sample.py injects drift into fraud-v3 and churn-v1 only.
    assert {a["model"] for a in found} == {"fraud-v3", "churn-v1"}
    assert sorted(r["model"] for r in requests) == ["churn-v1", "fraud-v3"]


# -- the image -------------------------------------------------------------------------------
@dataclasses.dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]]


def _dockerfile_stages() -> list[Stage]:
    """FROM-separated stages of the Dockerfile: (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif instruction == "FROM":
            image, _, name = rest.partition(" AS ") if " AS " in rest else rest.partition(" as ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image.strip())
            stages.append(Stage(name.strip(), image, []))
        else:
            stages[-1].instructions.append((instruction, rest))
    return stages


def _dockerignore_allows(relative: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.strip().startswith("#")]
    parts = relative.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    allowed = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]").replace(r"\[", "[").replace(r"\]", "]")
        if any(re.fullmatch(regex, c) for c in candidates):
            allowed = negated
    return allowed


def _stage_copy(sources: list[str], dest: str, workdir: PurePosixPath, rootfs: Path) -> None:
    """COPY from the build context (this repository, filtered by .dockerignore) into rootfs."""
    target = rootfs / (workdir / dest).relative_to("/")
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"Dockerfile copies {source}, which does not exist"
        if path.is_dir():
            files = [f for f in path.rglob("*") if f.is_file()
                     and _dockerignore_allows(f.relative_to(ROOT).as_posix())]
            assert files, f".dockerignore leaves nothing of {source} in the build context"
            for f in files:
                out = target / f.relative_to(path)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, out)
        else:
            assert _dockerignore_allows(source), f".dockerignore keeps {source} out of the build context"
            out = target / path.name if dest.endswith("/") or len(sources) > 1 else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)


def test_image_runs_as_non_root_from_a_slim_multi_stage_build() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: build tools and caches stay out of the runtime image"
    runtime = stages[-1]
    assert runtime.base.startswith("python:3.11-slim")
    instructions = dict(runtime.instructions)
    user = [rest for i, rest in runtime.instructions if i == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0"), "the processor must not run as root"
    copies = [rest for i, rest in runtime.instructions if i == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), "the runtime stage copies build outputs only"
    assert json.loads(instructions["ENTRYPOINT"]) == ["streamdrift"]
    assert "HEALTHCHECK" in instructions and "/health" in instructions["HEALTHCHECK"]
    for stage in stages:
        for instruction, rest in stage.instructions:
            assert not (instruction == "ENV" and re.search(r"\bSTREAMDRIFT_(?!CONFIG)", rest)), \
                "an image default for a STREAMDRIFT_* setting would override the config file's value"


def test_lock_file_pins_the_runtime_dependencies_only() -> None:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[\w.+!-]+", version), f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "streamdrift" not in pins
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} (pyproject.toml) is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement.specifier}"
    for spec in project["optional-dependencies"]["test"]:
        assert canonicalize_name(Requirement(spec).name) not in pins, f"test tool {spec} is in requirements.lock"


def test_dockerfile_install_steps_work_in_a_clean_virtualenv(tmp_path: Path) -> None:
    """Replays the build stage's COPY and RUN steps (pip only) into a fresh virtualenv."""
    build = _dockerfile_stages()[0]
    for instruction, rest in build.instructions:  # fail fast, before minutes of pip
        if instruction == "COPY":
            for source in shlex.split(rest)[:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    rootfs = tmp_path / "rootfs"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = dict(os.environ)
    for name in [n for n in env if n.startswith(("STREAMDRIFT_", "VIRTUAL_ENV", "PYTHONPATH"))]:
        env.pop(name)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    workdir = PurePosixPath("/")
    container_venv = None
    ran_pip = []
    for instruction, rest in build.instructions:
        if instruction == "ENV":
            match = re.search(r"VIRTUAL_ENV=(\S+)", rest)
            container_venv = match.group(1) if match else container_venv
            cache = re.search(r"NUMBA_CACHE_DIR=(\S+)", rest)
            if cache:  # under the container's venv: here under this one
                assert container_venv and cache.group(1).startswith(container_venv + "/")
                env["NUMBA_CACHE_DIR"] = str(venv / cache.group(1)[len(container_venv) + 1:])
        elif instruction == "WORKDIR":
            workdir = workdir / rest
            (rootfs / workdir.relative_to("/")).mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            words = shlex.split(rest)
            assert not any(w.startswith("--from") for w in words), "the build stage copies from the context"
            _stage_copy(words[:-1], words[-1], workdir, rootfs)
        elif instruction == "RUN":
            for step in (s.strip() for s in rest.split("&&")):
                words = shlex.split(step)
                if words[:3] == ["python", "-m", "venv"]:
                    assert words[3] == container_venv, "the venv the build creates is the one on PATH"
                    continue  # made above, in tmp_path
                if words == ["python", "-P", "-m", "streamdrift.kernels"]:  # the numba kernels, into the cache
                    command = [str(python), *words[1:]]
                else:
                    assert words[0] == "pip", f"the build stage runs only pip, venv and the kernels' compilation; " \
                                              f"teach this test: {step}"
                    command = [str(python), "-m", "pip", *words[1:]]
                    ran_pip.append(step)
                done = subprocess.run(command, cwd=rootfs / workdir.relative_to("/"),
                                      capture_output=True, text=True, env=env, timeout=900)
                assert done.returncode == 0, f"`{step}` failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert any("-r requirements.lock" in s or "-c requirements.lock" in s for s in ran_pip), \
        "the Dockerfile must install from requirements.lock"
    runtime = _dockerfile_stages()[-1]
    assert f"--from={build.name} {container_venv} {container_venv}" in [r for i, r in runtime.instructions
                                                                        if i == "COPY"]
    compiled = {path.name.split("-")[0] for path in Path(env["NUMBA_CACHE_DIR"]).rglob("*.nbi")}
    assert {"plain_scan._scan", "joint_compiled.bet", "positions_compiled.positions", "across_compiled.lookups_and_cusums",
            "adwin_compiled.add_blocks"} <= compiled, \
        f"the build stage leaves the compiled kernels in NUMBA_CACHE_DIR: {sorted(compiled)}"

    version = subprocess.run([str(venv / "bin" / "streamdrift"), "--version"], capture_output=True, text=True,
                             env=env, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"streamdrift {streamdrift.__version__}"
    # The image holds exactly the locked closure: nothing resolved beyond it, nothing missing.
    freeze = subprocess.run([str(python), "-m", "pip", "freeze", "--exclude", "streamdrift"], capture_output=True,
                            text=True, env=env, check=True).stdout
    installed = {canonicalize_name(n): v for n, _, v in (l.partition("==") for l in freeze.splitlines())}
    locked = {canonicalize_name(n): v for n, _, v in (l.partition("==") for l in LOCK.read_text().splitlines()
                                                      if l and not l.startswith("#"))}
    assert installed == locked


# -- end to end on the embedded broker -------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _sample(metrics: bytes, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.decode().splitlines()
               if line.startswith(name) and (line[len(name)] in " {"))


@dataclasses.dataclass
class EndToEnd:
    events: int
    metrics: bytes
    health: tuple[int, bytes]
    stderr: bytes
    healthcheck_up: int      # exit code of the image's HEALTHCHECK while the worker runs
    healthcheck_down: int    # ... and after it stopped


def _image_healthcheck(web_port: int) -> int:
    """Run the image's HEALTHCHECK command here (``python`` = this interpreter); its exit code."""
    (rest,) = [r for i, r in _dockerfile_stages()[-1].instructions if i == "HEALTHCHECK"]
    argv = json.loads(rest.split(" CMD ", 1)[1])
    argv[0] = sys.executable if argv[0] == "python" else argv[0]
    env = {"PATH": os.environ["PATH"], "STREAMDRIFT_WEB_PORT": str(web_port)}
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


@pytest.fixture(scope="module")
def end_to_end(compose: dict, tmp_path_factory: pytest.TempPathFactory) -> EndToEnd:
    """streamdrift-1 and the replay service as compose runs them, on an embedded broker.

    A broker of its own (not the session's): the deployed config uses the default topic names,
    which other tests may use too. Only the broker address and the web port are changed.
    """
    tmp_path = tmp_path_factory.mktemp("end_to_end")
    processor = compose["services"]["streamdrift-1"]
    replay = compose["services"]["replay"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMDRIFT_")}
    with gzip.open(SAMPLE) as sample:
        events = sum(1 for _ in sample)
    with EmbeddedBroker() as broker:
        port = _free_port()
        worker_env = {**clean, **_host_environment(processor), "STREAMDRIFT_BROKER": broker.bootstrap,
                      "STREAMDRIFT_WEB_PORT": str(port)}
        stderr = tmp_path / "worker.stderr"
        with open(stderr, "wb") as err:
            worker = subprocess.Popen([sys.executable, "-m", "streamdrift.cli", *processor["command"]],
                                      env=worker_env, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path)
        try:
            replay_env = {**clean, **_host_environment(replay), "STREAMDRIFT_BROKER": broker.bootstrap}
            command = [str(_host_path(replay, a)) if a.startswith("/") else a for a in replay["command"]]
            rate = command.index("--rate")
            command[rate:rate + 2] = []  # as fast as possible: the pacing is for people watching
            done = subprocess.run([sys.executable, "-m", "streamdrift.cli", *command], env=replay_env,
                                  capture_output=True, text=True, timeout=180, cwd=tmp_path)
            assert done.returncode == 0, f"replay failed:\n{done.stderr[-3000:]}"

            deadline = time.monotonic() + 120
            metrics = b""
            while time.monotonic() < deadline and worker.poll() is None:
                status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
                if status == 200 and _sample(metrics, "streamdrift_events_in_total") >= events \
                        and _sample(metrics, "streamdrift_retrain_requests_total") >= 2:
                    break
                time.sleep(0.5)
            assert worker.poll() is None, f"the processor exited:\n{stderr.read_text()[-3000:]}"
            health = _get(f"http://127.0.0.1:{port}/health")
            healthcheck_up = _image_healthcheck(port)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        healthcheck_down = _image_healthcheck(port)
    return EndToEnd(events, metrics, health, stderr.read_bytes(), healthcheck_up, healthcheck_down)


def test_replay_profile_end_to_end_on_the_embedded_broker(end_to_end: EndToEnd) -> None:
    metrics = end_to_end.metrics
    assert _sample(metrics, "streamdrift_events_in_total") == end_to_end.events, metrics.decode()[-3000:]
    assert _sample(metrics, "streamdrift_events_rejected_total") > 0
    assert _sample(metrics, "streamdrift_alerts_total") > 0
    assert _sample(metrics, "streamdrift_retrain_requests_total") >= 2
    status, health = end_to_end.health
    assert status == 200 and orjson.loads(health)["status"] == "ok", health
    assert (end_to_end.healthcheck_up, end_to_end.healthcheck_down != 0) == (0, True), \
        "the image's HEALTHCHECK must pass on a healthy worker and fail on a stopped one"
    # Every series a panel or rule queries shows up once the sample has gone through.
    exported = {line.split("{")[0].split(" ")[0] for line in metrics.decode().splitlines()
                if line and not line.startswith("#")}
    queried = {n for _, e in _dashboard_expressions() for n in re.findall(r"\bstreamdrift_\w+", e)}
    # Nothing idle yet; the sample has no model versions (test_versions.py checks those on the broker).
    missing = queried - exported - {"streamdrift_evicted_models_total", "streamdrift_model_decisions_total",
                                    "streamdrift_model_version_loss"}
    assert not missing, f"the dashboard queries series the processor did not export: {sorted(missing)}"


def test_processor_log_lines_from_streamdrift_are_json(end_to_end: EndToEnd) -> None:
    lines = [orjson.loads(line) for line in end_to_end.stderr.splitlines() if line.startswith(b"{")]
    ours = [line for line in lines if line.get("logger", "").startswith("streamdrift")]
    assert ours, f"no JSON log lines from streamdrift:\n{end_to_end.stderr.decode()[-3000:]}"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in ours)
    assert any(line.get("alert_id") for line in ours), "alert log lines carry their alert_id"


def test_every_processor_log_line_is_json(end_to_end: EndToEnd) -> None:
    not_json = []
    for line in end_to_end.stderr.decode().splitlines():
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            not_json.append(line)
    assert not not_json, f"{len(not_json)} stderr lines are not JSON, e.g.:\n" + "\n".join(not_json[:10])


# -- the README ------------------------------------------------------------------------------
def test_readme_configuration_reference_is_the_generated_one() -> None:
    script = ROOT / "scripts" / "config_reference.py"
    generated = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    readme = ROOT / "README.md"
    how = (f"paste the output of `python scripts/config_reference.py` between {README_START} and {README_END} "
           "in README.md")
    assert readme.exists(), f"README.md is missing; {how}"
    text = readme.read_text()
    assert README_START in text and README_END in text, f"README.md has no reference markers; {how}"
    documented = text.split(README_START, 1)[1].split(README_END, 1)[0]
    assert documented.strip() == generated.strip(), f"README.md's configuration reference is out of date; {how}"
