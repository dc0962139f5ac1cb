#!/usr/bin/env python3
"""Checks what schema validation cannot: that the Kubernetes manifests in deploy/kubernetes/ fit
together and fit the binary. Run by scripts/test.sh after `kubernetes-validate --strict` (needs
PyYAML, which kubernetes-validate brings).

  python3 scripts/check_manifests.py [deploy/kubernetes]

- every Secret, ConfigMap and key the gateway Deployment references exists;
- every secret the binary reads (src/environment.rs `SECRETS`) reaches the pods as a
  `<NAME>_FILE` pointing at a key of the mounted Secret, and no secret arrives as a plain value;
- each Service selects pods of a workload and names container ports those pods have;
- the PodDisruptionBudget and the HorizontalPodAutoscaler target the gateway;
- a NetworkPolicy keeps the admin port to listed sources while the public port stays open;
- Prometheus scrape annotations sit on the gateway's pods only, never on a Service;
- the PostgreSQL and Redis hosts in the Secret and the ConfigMap are Services defined here.
Exit 1 with one line per problem.
"""

import os
import re
import sys
from urllib.parse import urlparse

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(directory):
    objects = []
    for name in sorted(os.listdir(directory)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(directory, name)) as f:
                for doc in yaml.safe_load_all(f):
                    if doc:
                        doc["__file"] = name
                        objects.append(doc)
    return objects


def binary_secrets():
    """The names in `pub const SECRETS` of src/environment.rs."""
    with open(os.path.join(ROOT, "src", "environment.rs")) as f:
        text = f.read()
    block = re.search(r"pub const SECRETS: &\[&str\] = &\[(.*?)\];", text, re.S)
    if not block:
        raise SystemExit("check_manifests: SECRETS not found in src/environment.rs")
    return re.findall(r'"(COMPUTEGATE_[A-Z0-9_]+)"', block.group(1))


def labels_match(selector, labels):
    if not selector:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        value = labels.get(expr["key"])
        if expr["operator"] == "In" and value not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and value in expr["values"]:
            return False
        if expr["operator"] == "Exists" and value is None:
            return False
    return True


def check(objects):
    problems = []
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o

    def get(kind, name):
        return by_kind.get(kind, {}).get(name)

    def secret_keys(name):
        s = get("Secret", name)
        return None if s is None else set((s.get("stringData") or {}) | (s.get("data") or {}))

    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    gateway = get("Deployment", "computegate")
    if gateway is None:
        return ["no Deployment named computegate"]
    pod = gateway["spec"]["template"]
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "computegate")

    # References from every workload's pods.
    for w in workloads:
        spec = w["spec"]["template"]["spec"]
        where = f'{w["__file"]}: {w["kind"]} {w["metadata"]["name"]}'
        for v in spec.get("volumes", []):
            if "configMap" in v and get("ConfigMap", v["configMap"]["name"]) is None:
                problems.append(f'{where}: volume {v["name"]} names a missing ConfigMap')
            if "secret" in v and get("Secret", v["secret"]["secretName"]) is None:
                problems.append(f'{where}: volume {v["name"]} names a missing Secret')
        for c in spec["containers"]:
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    keys = secret_keys(ref["name"])
                    if keys is None or ref["key"] not in keys:
                        problems.append(f'{where}: env {e["name"]} names missing secret key {ref["name"]}/{ref["key"]}')
            for src in c.get("envFrom", []):
                if "secretRef" in src and get("Secret", src["secretRef"]["name"]) is None:
                    problems.append(f'{where}: envFrom names a missing Secret')

    # Every secret the binary reads arrives as a file of the mounted Secret.
    mounts = {}
    for m in container.get("volumeMounts", []):
        volume = next((v for v in pod["spec"].get("volumes", []) if v["name"] == m["name"]), None)
        if volume and "secret" in volume:
            mounts[m["mountPath"].rstrip("/")] = volume["secret"]["secretName"]
    env = {e["name"]: e for e in container.get("env", [])}
    for name in binary_secrets():
        if name in env:
            problems.append(f"gateway: {name} is set as a plain value; mount it and set {name}_FILE")
            continue
        entry = env.get(f"{name}_FILE")
        if entry is None or "value" not in entry:
            problems.append(f"gateway: {name}_FILE is not set (the binary reads {name})")
            continue
        directory, key = os.path.split(entry["value"])
        secret = mounts.get(directory)
        if secret is None:
            problems.append(f"gateway: {name}_FILE={entry['value']} is not under a mounted Secret")
        elif key not in (secret_keys(secret) or set()):
            problems.append(f"gateway: {name}_FILE names key {key}, which Secret {secret} lacks")

    # Services select pods and name their ports.
    for name, svc in by_kind.get("Service", {}).items():
        selector = {"matchLabels": svc["spec"].get("selector") or {}}
        targets = [w for w in workloads if labels_match(selector, w["spec"]["template"]["metadata"]["labels"])]
        if not targets:
            problems.append(f"Service {name} selects no pods")
            continue
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            ok = any(
                target in (p.get("name"), p["containerPort"])
                for w in targets for c in w["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])
            )
            if not ok:
                problems.append(f"Service {name}: targetPort {target} is no container port of its pods")
        if any(k.startswith("prometheus.io/") for k in (svc["metadata"].get("annotations") or {})):
            problems.append(f"Service {name} carries scrape annotations (pods only: each replica once)")
    if (pod["metadata"].get("annotations") or {}).get("prometheus.io/scrape") != "true":
        problems.append("gateway pods lack the prometheus.io/scrape annotation")

    # PDB and HPA.
    gateway_labels = pod["metadata"]["labels"]
    pdbs = [p for p in by_kind.get("PodDisruptionBudget", {}).values()
            if labels_match(p["spec"]["selector"], gateway_labels)]
    if not pdbs:
        problems.append("no PodDisruptionBudget selects the gateway pods")
    hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", {}).values()
            if h["spec"]["scaleTargetRef"]["kind"] == "Deployment"
            and h["spec"]["scaleTargetRef"]["name"] == "computegate"]
    if not hpas:
        problems.append("no HorizontalPodAutoscaler targets Deployment computegate")
    elif hpas[0]["spec"].get("minReplicas", 1) < 2:
        problems.append("the HorizontalPodAutoscaler allows fewer than two replicas")

    # NetworkPolicy: admin port restricted, public port open.
    policies = [n for n in by_kind.get("NetworkPolicy", {}).values()
                if labels_match(n["spec"]["podSelector"], gateway_labels)]
    if not policies:
        problems.append("no NetworkPolicy selects the gateway pods")
    for n in policies:
        for rule in n["spec"].get("ingress", []):
            ports = [p.get("port") for p in rule.get("ports", [])]
            if not rule.get("ports"):
                problems.append(f'NetworkPolicy {n["metadata"]["name"]}: a rule opens every port')
            if ("admin" in ports or 9090 in ports) and not rule.get("from"):
                problems.append(f'NetworkPolicy {n["metadata"]["name"]}: the admin port is open to every source')
        if not any("http" in [p.get("port") for p in r.get("ports", [])] for r in n["spec"].get("ingress", [])):
            problems.append(f'NetworkPolicy {n["metadata"]["name"]}: the public port is not admitted')

    # Store hosts are Services of these manifests.
    services = set(by_kind.get("Service", {}))
    secret = get("Secret", "computegate-secrets") or {}
    url = (secret.get("stringData") or {}).get("database-url", "")
    if urlparse(url).hostname not in services:
        problems.append(f"database-url host {urlparse(url).hostname!r} is not a Service here")
    config = (get("ConfigMap", "computegate-config") or {}).get("data", {}).get("computegate.toml", "")
    redis = re.search(r'^\s*url\s*=\s*"(redis[s]?://[^"]+)"', config, re.M)
    if not redis or urlparse(redis.group(1)).hostname not in services:
        problems.append("the ConfigMap's redis.url host is not a Service here")
    return problems


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "deploy", "kubernetes")
    problems = check(load(directory))
    for p in problems:
        print(f"check_manifests: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"check_manifests: {directory}: references, secrets, ports, PDB, HPA, NetworkPolicy and annotations agree")


if __name__ == "__main__":
    main()
