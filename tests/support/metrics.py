"""Read the hub's /hub/metrics and FactoryLab's Prometheus as an operator would."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from .hub import HUB_URL

METRICS_TOKEN_FILE = Path("/etc/factorylab/metrics-api.token")
PROMETHEUS_URL = "http://127.0.0.1:9090"
PROMETHEUS_PASSWORD_FILE = Path("/etc/factorylab/prometheus-web.password")
DASHBOARD = Path("/opt/factorylab/share/grafana/factorylab-dashboard.json")
EVENTS_LOG = Path("/var/log/factorylab/events.log")


def scrape(token: str | None = None) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of ``/hub/metrics`` as (name, labels, value), with the metrics token."""
    token = token or METRICS_TOKEN_FILE.read_text().strip()
    response = requests.get(
        f"{HUB_URL}/hub/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    response.raise_for_status()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def total(samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for sample, found, value in samples
        if sample == name and all(found.get(k) == v for k, v in labels.items())
    )


def prometheus_query(expr: str) -> list[dict]:
    """The result of an instant PromQL query against FactoryLab's Prometheus."""
    password = PROMETHEUS_PASSWORD_FILE.read_text().strip()
    response = requests.get(
        f"{PROMETHEUS_URL}/api/v1/query",
        params={"query": expr},
        auth=("factorylab", password),
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["data"]["result"]


def wait_for_query(expr: str, check, timeout: float = 60) -> list[dict]:
    """Query until ``check(result)`` holds; the last result (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        result = prometheus_query(expr)
        if check(result):
            return result
        assert time.monotonic() < deadline, f"{expr}: {result}"
        time.sleep(1)


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel of the dashboard the deploy shipped."""
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def events_of(job_id: str) -> list[dict]:
    """The event-log lines of one session job, oldest first."""
    lines = [json.loads(line) for line in EVENTS_LOG.read_text().splitlines() if line.strip()]
    return [line for line in lines if line.get("job") == job_id]
