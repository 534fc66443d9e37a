# syntax=docker/dockerfile:1
# The streamdrift processor image: `docker build -t streamdrift .`
#
# Two stages: the build stage installs the pinned dependency closure (requirements.lock) and the
# project into a virtualenv; the runtime stage copies only that virtualenv onto a clean
# python:3.11-slim and runs it as an unprivileged user. tests/integration/test_deploy.py replays
# this file's COPY and `pip install` steps in a fresh virtualenv, so keep them plain.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/streamdrift \
    PATH=/opt/streamdrift/bin:$PATH \
    NUMBA_CACHE_DIR=/opt/streamdrift/numba-cache
RUN python -m venv /opt/streamdrift
WORKDIR /src
# Dependencies first, in their own layer: source edits do not reinstall numpy & co.
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY streamdrift/ ./streamdrift/
COPY detectors/ ./detectors/
COPY stream/ ./stream/
# --no-deps: everything the project needs came from the lock; `pip check` proves the lock is
# complete and consistent with pyproject.toml's ranges.
RUN pip install --no-deps . && pip check
# The compiled (numba) kernels (streamdrift/kernels.py) into numba's cache, once here: compiled
# at start-up instead, they would cost each worker process seconds. -P: the installed package,
# not the source folder in this working directory (which lacks streamdrift.detectors).
RUN python -P -m streamdrift.kernels

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="streamdrift" \
      org.opencontainers.image.description="Streaming drift detection for ML feature events on Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed uid/gid so volume permissions and Kubernetes runAsUser are predictable.
RUN groupadd --system --gid 10001 streamdrift \
    && useradd --system --uid 10001 --gid streamdrift --home-dir /var/lib/streamdrift \
       --create-home --shell /usr/sbin/nologin streamdrift
COPY --from=build /opt/streamdrift /opt/streamdrift
# numba reads its cache only from a directory it may write to (else it compiles again).
COPY --from=build --chown=10001:10001 /opt/streamdrift/numba-cache /opt/streamdrift/numba-cache
ENV VIRTUAL_ENV=/opt/streamdrift \
    PATH=/opt/streamdrift/bin:$PATH \
    NUMBA_CACHE_DIR=/opt/streamdrift/numba-cache \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib
# faust keeps its data directory under the working directory: it must be writable.
WORKDIR /var/lib/streamdrift
USER 10001:10001
EXPOSE 6066
# /health answers 503 while starting or degraded; urlopen raises on it, so the check fails.
# The port comes from STREAMDRIFT_WEB_PORT (not set here: it would override web_port in the TOML
# file); whoever moves the port away from 6066 sets that variable, as docker-compose.yml does.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('STREAMDRIFT_WEB_PORT', '6066'), timeout=4)"]
ENTRYPOINT ["streamdrift"]
CMD ["run"]
