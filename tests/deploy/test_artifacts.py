"""deploy/ validated with real tools: promtool for the rules, the Compose Specification's JSON
schema for the compose file, kubernetes-validate for the manifests (rendered by a small
kustomize in Python), and structure checks for the Grafana dashboards and provisioning."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
# The schema's source: compose-spec/compose-spec, schema/compose-spec.json (see README.md there).
COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
K8S_VERSION = "1.31.0"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `make test-deps` installs Debian's prometheus package")
    return found


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# -- Prometheus ---------------------------------------------------------------------------
def test_rules_pass_promtool_check() -> None:
    assert RULE_FILES
    out = run(promtool(), "check", "rules", *map(str, RULE_FILES))
    assert out.count("SUCCESS") == len(RULE_FILES)


def test_rules_pass_their_promtool_unit_tests() -> None:
    assert RULE_TESTS
    run(promtool(), "test", "rules", *map(str, RULE_TESTS))


def test_every_alert_has_a_unit_test_and_annotations() -> None:
    alerts = {
        rule["alert"]: rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert set(alerts) <= tested, f"alerts without a firing test: {set(alerts) - tested}"
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name


def test_compose_prometheus_config_passes_promtool() -> None:
    run(promtool(), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))


# -- Grafana ------------------------------------------------------------------------------
def provisioned_datasources() -> dict[str, str]:
    doc = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/greenlane.yml").read_text())
    return {ds["uid"]: ds["type"] for ds in doc["datasources"]}


def test_dashboard_provisioning_points_at_the_dashboards() -> None:
    doc = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/greenlane.yml").read_text())
    [provider] = doc["providers"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    assert set(provisioned_datasources().values()) == {
        "prometheus",
        "grafana-postgresql-datasource",
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_structure(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    datasources = provisioned_datasources()
    assert dashboard["uid"] == path.stem and len(dashboard["uid"]) <= 40
    assert dashboard["title"].startswith("Greenlane / ")
    assert "greenlane" in dashboard["tags"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        where = f"{path.name}: {panel['title']}"
        assert panel["description"], where
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
        if panel["type"] in ("text", "row"):
            continue
        assert panel["targets"], where
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            ds = target["datasource"]
            assert datasources.get(ds["uid"]) == ds["type"], f"{where}: datasource {ds}"
            if ds["type"] == "prometheus":
                assert target["expr"].strip(), where
            else:
                assert target["rawSql"].strip() and target["format"] in ("table", "time_series")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert datasources.get(variable["datasource"]["uid"]) == "prometheus"


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(DASHBOARDS) == 4 and len(uids) == len(set(uids))


# -- Compose ------------------------------------------------------------------------------
def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


def test_compose_stack_is_complete_and_its_files_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    workers = [name for name in services if name.startswith("worker-")]
    assert len(workers) >= 2
    assert {"kafka", "postgres", "prometheus", "alertmanager", "grafana", "notifier"} <= set(
        services
    )
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    assert services["notifier"]["command"] == ["notify"]
    assert services["audit-writer"]["command"] == ["audit-writer"]
    assert services["audit-writer"]["environment"]["GREENLANE_AUDIT_URL"].startswith(
        "postgresql+psycopg://"
    )
    for name in workers:
        env = services[name]["environment"]
        assert env["GREENLANE_EMBEDDED_BROKER"] == "false"
        assert env["GREENLANE_AUDIT_IN_WORKER"] == "false"  # the audit-writer service writes
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    [job] = [j for j in scrape["scrape_configs"] if j["job_name"] == "greenlane-worker"]
    assert sorted(t.split(":")[0] for t in job["static_configs"][0]["targets"]) == sorted(workers)
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), volume
    dockerfile = DEPLOY / services["topics"]["build"]["dockerfile"].removeprefix("deploy/")
    assert dockerfile.exists()


# -- Kubernetes ---------------------------------------------------------------------------
def merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for these manifests: maps merge, lists of named
    maps merge by name, other values are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in base + patch)
    ):
        out_list = [dict(x) for x in base]
        for item in patch:
            match = next((i for i, x in enumerate(out_list) if x["name"] == item["name"]), None)
            if match is None:
                out_list.append(item)
            else:
                out_list[match] = merge(out_list[match], item)
        return out_list
    return copy.deepcopy(patch)


def containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    spec = resource.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """Render a kustomization: resources, labels, namespace, images, replicas, patches."""
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "resources", "labels", "namespace", "images", "replicas"}
    assert set(k) <= known | {"patches"}, f"kustomize features not rendered: {set(k) - known}"
    out: list[dict[str, Any]] = []
    for entry in k.get("resources", []):
        path = folder / entry
        if path.is_dir():
            out.extend(kustomize(path))
        else:
            out.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch_entry in k.get("patches", []):
        patch = yaml.safe_load((folder / patch_entry["path"]).read_text())
        idx = [
            i
            for i, r in enumerate(out)
            if (r["kind"], r["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
        ]
        assert len(idx) == 1, f"patch {patch_entry['path']} matches {len(idx)} resources"
        out[idx[0]] = merge(out[idx[0]], patch)
    for resource in out:
        meta = resource["metadata"]
        for group in k.get("labels", []):
            meta.setdefault("labels", {}).update(group["pairs"])
        if "namespace" in k and resource["kind"] != "Namespace":
            meta["namespace"] = k["namespace"]
        for image in k.get("images", []):
            for container in containers(resource):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
        for rep in k.get("replicas", []):
            if meta["name"] == rep["name"] and resource["kind"] in ("Deployment", "StatefulSet"):
                resource["spec"]["replicas"] = rep["count"]
    return out


OVERLAY = DEPLOY / "kubernetes" / "overlays" / "production"
BASE = DEPLOY / "kubernetes" / "base"


@pytest.mark.parametrize("folder", [BASE, OVERLAY], ids=["base", "production"])
def test_kubernetes_manifests_validate(folder: Path) -> None:
    resources = kustomize(folder)
    assert resources
    for resource in resources:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_production_overlay_scales_workers_within_the_partitions() -> None:
    by_kind = {(r["kind"], r["metadata"]["name"]): r for r in kustomize(OVERLAY)}
    worker = by_kind[("Deployment", "greenlane-worker")]
    config = by_kind[("ConfigMap", "greenlane-config")]["data"]
    hpa = by_kind[("HorizontalPodAutoscaler", "greenlane-worker")]
    partitions = int(config["GREENLANE_PARTITIONS"])
    assert partitions == 24 and config["GREENLANE_REPLICATION"] == "3"
    assert worker["spec"]["replicas"] == hpa["spec"]["minReplicas"] == 4
    assert hpa["spec"]["maxReplicas"] <= partitions
    assert all(
        r["metadata"]["namespace"] == "greenlane"
        for r in by_kind.values()
        if r["kind"] != "Namespace"
    )
    [container] = containers(worker)
    assert container["image"] == "registry.example.invalid/greenlane/greenlane:0.1.0"
    assert container["resources"]["requests"]["cpu"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert str(port) == config["GREENLANE_WEB_PORT"]
    assert by_kind[("Deployment", "greenlane-notifier")]["spec"]["template"]["spec"]["containers"][
        0
    ]["args"] == ["notify"]
