#!/usr/bin/env python3
"""Checks behind scripts/test-deploy.sh (run with the tools venv: PyYAML, jsonschema).

    test-deploy.py manifests RENDERED.yaml OUT_DIR   split a `helm template` output: core
        kinds go to OUT_DIR/core.yaml for kubernetes-validate; CRD kinds the chart may
        render (ServiceMonitor) are validated here; any other kind is an error
    test-deploy.py configs RENDERED.yaml             the TOML in the chart's ConfigMaps parses
    test-deploy.py expect VARIANT RENDERED.yaml      what a values variant must have rendered
    test-deploy.py values CHART_DIR [--write]        values.yaml vs values.schema.json vs the
        README table (--write regenerates the table)
    test-deploy.py compose DEPLOY_DIR                compose, Prometheus and Grafana files
        agree with each other and with the files they mount
    test-deploy.py dockerfiles REPO_DIR              the images' ports and defaults match the
        Rust defaults; COPY sources exist
"""

import json
import re
import sys
import tomllib
from pathlib import Path

import jsonschema
import yaml

PROBLEMS = []


def fail(msg):
    PROBLEMS.append(msg)


def docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def name_of(d):
    return f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}"


# ---- manifests -------------------------------------------------------------------------

DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
SECRET_KEY = {"type": "object", "additionalProperties": False, "required": ["name", "key"],
              "properties": {"name": {"type": "string"}, "key": {"type": "string"}, "optional": {"type": "boolean"}}}
SECRET_OR_CM = {"type": "object", "additionalProperties": False,
                "properties": {"secret": SECRET_KEY, "configMap": SECRET_KEY}}
LABEL_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array", "items": {"type": "object"}}}}
RELABEL = {"type": "object", "additionalProperties": False, "properties": {
    "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$"}},
    "separator": {"type": "string"}, "targetLabel": {"type": "string"}, "regex": {"type": "string"},
    "modulus": {"type": "integer"}, "replacement": {"type": "string"},
    "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap", "LabelMap",
                        "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase", "uppercase", "Uppercase",
                        "keepequal", "KeepEqual", "dropequal", "DropEqual"]}}}
# The subset of monitoring.coreos.com/v1 ServiceMonitor (prometheus-operator CRD) the chart
# uses, with the CRD's field names and types; unknown fields are errors.
SERVICE_MONITOR = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"], "properties": {
            "jobLabel": {"type": "string"},
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
            "selector": LABEL_SELECTOR,
            "endpoints": {"type": "array", "minItems": 1, "items": {"type": "object", "additionalProperties": False, "properties": {
                "port": {"type": "string"}, "targetPort": {"type": ["string", "integer"]}, "path": {"type": "string"},
                "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]}, "interval": DURATION, "scrapeTimeout": DURATION,
                "honorLabels": {"type": "boolean"},
                "tlsConfig": {"type": "object", "additionalProperties": False, "properties": {
                    "ca": SECRET_OR_CM, "cert": SECRET_OR_CM, "keySecret": SECRET_KEY, "serverName": {"type": "string"},
                    "insecureSkipVerify": {"type": "boolean"}, "caFile": {"type": "string"}, "certFile": {"type": "string"},
                    "keyFile": {"type": "string"}}},
                "relabelings": {"type": "array", "items": RELABEL},
                "metricRelabelings": {"type": "array", "items": RELABEL}}}}}}}}
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR}
CORE_GROUPS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"}


def cmd_manifests(rendered, out_dir):
    core = []
    for d in docs(rendered):
        key = (d.get("apiVersion"), d.get("kind"))
        if key in CRDS:
            for e in jsonschema.Draft7Validator(CRDS[key]).iter_errors(d):
                fail(f"{name_of(d)}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
        elif d.get("apiVersion") in CORE_GROUPS:
            core.append(d)
        else:
            fail(f"{name_of(d)}: {key[0]} is neither a core API nor a CRD this check knows")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    Path(out_dir, "core.yaml").write_text(yaml.safe_dump_all(core, sort_keys=False))


def cmd_configs(rendered):
    for d in docs(rendered):
        if d.get("kind") != "ConfigMap":
            continue
        for key, text in (d.get("data") or {}).items():
            if not key.endswith(".toml"):
                continue
            try:
                cfg = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                fail(f"{name_of(d)} {key}: invalid TOML: {e}")
                continue
            # Helm's own toToml writes 5000 as 5000.0: integers must stay integers
            for k, v in walk(cfg):
                if isinstance(v, float) and v.is_integer() and not re.search(r"(factor|jitter|sigma|_ms|_per_s)$", k):
                    fail(f"{name_of(d)} {key}: {k} = {v} is a float")
            if key == "collector.toml":
                for k in ("grpc_listen", "http_listen"):
                    if k not in cfg:
                        fail(f"{name_of(d)} {key}: no {k}")


def walk(v, prefix=""):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from walk(x, f"{prefix}.{k}" if prefix else k)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from walk(x, f"{prefix}[{i}]")
    else:
        yield prefix, v


def by_kind(rendered):
    out = {}
    for d in docs(rendered):
        out.setdefault(d["kind"], []).append(d)
    return out


def one(kinds, kind, suffix):
    for d in kinds.get(kind, []):
        if d["metadata"]["name"].endswith(suffix):
            return d
    fail(f"no {kind} *{suffix}")
    return None


def pod(d):
    return d["spec"]["template"]["spec"] if d else {}


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def cmd_expect(variant, rendered):
    k = by_kind(rendered)
    kinds = set(k)
    coll = one(k, "Deployment", "-collector") if variant != "agent-only" else None
    ds = one(k, "DaemonSet", "-agent")
    agent = pod(ds)["containers"][0] if ds else {}
    aenv = env_of(agent)
    for need in ("NODE_NAME", "LLMSCOPE_COLLECTOR", "LLMSCOPE_SITE", "LLMSCOPE_TOKEN_FILE", "LLMSCOPE_DATA_DIR",
                 "LLMSCOPE_AGENT_HTTP_LISTEN", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES"):
        if need not in aenv:
            fail(f"{variant}: agent env has no {need}")
    if aenv.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "spec.nodeName":
        fail(f"{variant}: NODE_NAME is not the downward-API spec.nodeName")
    # automatic targets look on the node (its IP from the downward API), never in the pod
    if aenv.get("LLMSCOPE_AUTO_HOSTS", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "status.hostIP":
        fail(f"{variant}: LLMSCOPE_AUTO_HOSTS is not the downward-API status.hostIP")
    if ds:
        cms = [d for d in docs(rendered) if d.get("kind") == "ConfigMap" and "agent.toml" in (d.get("data") or {})]
        acfg = tomllib.loads(cms[0]["data"]["agent.toml"]) if cms else {}
        # the simulated model never reaches a production database unless asked for
        if acfg.get("auto_simulated") is not False:
            fail(f"{variant}: agent.toml does not set auto_simulated = false (got {acfg.get('auto_simulated')!r})")
        if acfg.get("auto_openai_ports") != [8000] or acfg.get("auto_ollama_ports") != [11434]:
            fail(f"{variant}: automatic target ports {acfg.get('auto_ollama_ports')} {acfg.get('auto_openai_ports')}")
        # pod discovery: RBAC rendered only when it is on, and then read-only on pods
        kube = acfg.get("kubernetes", {})
        rbac = [d for d in docs(rendered) if d.get("kind") in ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")]
        if kube.get("discover"):
            roles = [d for d in rbac if d["kind"] in ("ClusterRole", "Role")]
            if len(roles) != 1 or roles[0]["rules"] != [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]:
                fail(f"{variant}: discovery needs exactly one role reading pods, got {roles}")
            sa = pod(ds).get("serviceAccountName")
            binds = [d for d in rbac if d["kind"].endswith("Binding")]
            if not binds or binds[0]["subjects"][0]["name"] != sa or pod(ds).get("automountServiceAccountToken") is not True:
                fail(f"{variant}: discovery's role is not bound to the agent's mounted service account {sa}")
            if not any(d.get("kind") == "ServiceAccount" and d["metadata"]["name"] == sa for d in docs(rendered)):
                fail(f"{variant}: the agent's service account {sa} is not rendered")
        else:
            if rbac:
                fail(f"{variant}: RBAC rendered without agent.discovery.enabled: {[name_of(d) for d in rbac]}")
            if ds and pod(ds).get("automountServiceAccountToken") is not False:
                fail(f"{variant}: the agent mounts a service account token without discovery")
    token_vol = [v for v in pod(ds).get("volumes", []) if v["name"] == "token"]
    if not token_vol or "secret" not in token_vol[0]:
        fail(f"{variant}: the agent token is not mounted from a Secret")
    if coll:
        c = pod(coll)["containers"][0]
        cenv = env_of(c)
        if "LLMSCOPE_DATABASE_URL" not in cenv:
            fail(f"{variant}: collector has no LLMSCOPE_DATABASE_URL")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        if ports != {"grpc": 7070, "http": 8080, "otlp-grpc": 4317, "otlp-http": 4318}:
            fail(f"{variant}: collector ports {ports}")
        if coll["spec"].get("template", {}).get("spec", {}).get("automountServiceAccountToken") is not False:
            fail(f"{variant}: collector mounts a service account token")
    checks = {
        "default": lambda: (
            "StatefulSet" in kinds or fail("default: no bundled PostgreSQL StatefulSet"),
            pod(ds).get("nodeSelector") == {"nvidia.com/gpu.present": "true"} or fail("default: agent nodeSelector"),
            any(t.get("key") == "nvidia.com/gpu" for t in pod(ds).get("tolerations", [])) or fail("default: no nvidia.com/gpu toleration"),
            "PodDisruptionBudget" not in kinds or fail("default: a PDB with one replica blocks node drains"),
            coll and coll["spec"].get("replicas") == 1 or fail("default: collector replicas"),
            coll["spec"]["strategy"] == {"type": "Recreate"} or fail("default: one collector without NATS must be replaced with Recreate"),
            "LLMSCOPE_CLUSTER_NATS_URL" not in env_of(pod(coll)["containers"][0]) or fail("default: cluster mode without natsUrl"),
            "HorizontalPodAutoscaler" not in kinds or fail("default: unexpected HPA"),
            "ServiceMonitor" not in kinds or fail("default: unexpected ServiceMonitor"),
            any(v["name"] == "buffer" and "emptyDir" in v for v in pod(ds)["volumes"]) or fail("default: buffer is not an emptyDir"),
        ),
        "external-db": lambda: (
            "StatefulSet" not in kinds or fail("external-db: bundled PostgreSQL rendered"),
            env_of(pod(coll)["containers"][0])["LLMSCOPE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "llmscope-db", "key": "url"}
            or fail("external-db: database URL not from llmscope-db/url"),
            env_of(pod(coll)["containers"][0])["LLMSCOPE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "llmscope-admin"
            or fail("external-db: admin token not from llmscope-admin"),
            "Secret" not in kinds or fail("external-db: the chart made a Secret although all are existing ones"),
            env_of(pod(coll)["containers"][0])["LLMSCOPE_CLUSTER_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "llmscope-nats", "key": "token"}
            or fail("external-db: NATS token not from llmscope-nats/token"),
            coll["spec"].get("replicas") == 3 or fail("external-db: three replicas"),
        ),
        "scale": lambda: (
            "HorizontalPodAutoscaler" in kinds or fail("scale: no HPA"),
            env_of(pod(coll)["containers"][0]).get("LLMSCOPE_CLUSTER_NATS_URL", {}).get("value") == "nats://nats.nats.svc:4222"
            or fail("scale: cluster mode not configured"),
            env_of(pod(coll)["containers"][0]).get("LLMSCOPE_CLUSTER_CREDENTIALS_FILE", {}).get("value") == "/etc/llmscope/nats-creds/nats.creds"
            or fail("scale: NATS credentials file"),
            env_of(pod(coll)["containers"][0]).get("LLMSCOPE_CLUSTER_TLS_CERT", {}).get("value") == "/etc/llmscope/nats-tls/tls.crt"
            or fail("scale: NATS client certificate"),
            {v["name"] for v in pod(coll)["volumes"]} >= {"nats-creds", "nats-tls"} or fail("scale: NATS secrets not mounted"),
            coll["spec"]["strategy"]["type"] == "RollingUpdate" or fail("scale: cluster mode rolls replicas one by one"),
            "replicas" not in coll["spec"] or fail("scale: replicas set although the HPA owns them"),
            "Ingress" in kinds or fail("scale: no Ingress"),
            len(k.get("ServiceMonitor", [])) == 2 or fail("scale: expected 2 ServiceMonitors"),
            len([c for c in k.get("ConfigMap", []) if "-dashboard-" in c["metadata"]["name"]]) == 4 or fail("scale: expected 4 dashboard ConfigMaps"),
        ),
        "gpu": lambda: (
            pod(ds).get("runtimeClassName") == "nvidia" or fail("gpu: no runtimeClassName nvidia"),
            pod(ds).get("hostNetwork") is True or fail("gpu: no hostNetwork"),
            any(v["name"] == "buffer" and v.get("hostPath", {}).get("path") == "/var/lib/llmscope-agent" for v in pod(ds)["volumes"]) or fail("gpu: no hostPath buffer"),
            [i["name"] for i in pod(ds).get("initContainers", [])] == ["buffer-owner"] or fail("gpu: no buffer-owner init container"),
            any(p.get("containerPort") == 8001 for p in agent["ports"]) or fail("gpu: proxy port 8001 not exposed"),
        ),
        "tls": lambda: (
            "readinessProbe" in pod(coll)["containers"][0] and "tcpSocket" in pod(coll)["containers"][0]["readinessProbe"] or fail("tls: mTLS readiness probe should be tcpSocket"),
            aenv.get("LLMSCOPE_COLLECTOR", {}).get("value", "").startswith("https://") or fail("tls: agent does not use https"),
            aenv.get("LLMSCOPE_CA_CERT", {}).get("value") == "/etc/llmscope/ca/ca.crt" or fail("tls: agent CA not set"),
            any(v["name"] == "client-cert" for v in pod(ds)["volumes"]) or fail("tls: no agent client certificate"),
            any(e.get("scheme") == "https" for sm in k.get("ServiceMonitor", []) for e in sm["spec"]["endpoints"]) or fail("tls: collector not scraped over https"),
        ),
        "bundled-postgres": lambda: (
            one(k, "StatefulSet", "-postgresql")["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast-ssd" or fail("bundled-postgres: storage class"),
            "PodDisruptionBudget" not in kinds or fail("bundled-postgres: a PDB with one replica blocks node drains"),
            one(k, "Secret", "-agent-token") is not None,
            one(k, "Service", "-collector")["spec"]["type"] == "LoadBalancer" or fail("bundled-postgres: service type"),
        ),
        "agent-only": lambda: (
            not {"Deployment", "StatefulSet"} & kinds or fail("agent-only: collector or PostgreSQL rendered"),
            aenv["LLMSCOPE_COLLECTOR"]["value"] == "https://collector.llmscope.example.com:7070" or fail("agent-only: collector URL"),
            "ClusterRole" in kinds or fail("agent-only: discovery on but no ClusterRole"),
        ),
    }
    if variant not in checks:
        fail(f"unknown variant {variant}: add its expectations to scripts/test-deploy.py")
        return
    checks[variant]()


# ---- values ----------------------------------------------------------------------------

PASSTHROUGH = {"collector.config", "agent.config", "collector.serviceMonitor.tlsConfig"}
ROW = re.compile(r"^(\s*)([A-Za-z0-9_.\-]+|\"[^\"]+\"):(\s.*)?$")


def described_keys(values_text):
    """[(dotted.path, description)] for every key, from the `# --` comments."""
    out, stack, desc, list_indent = [], [], [], None
    for line in values_text.splitlines():
        s = line.strip()
        indent = len(line) - len(line.lstrip())
        if s.startswith("- "):
            list_indent = indent if list_indent is None else min(list_indent, indent)
            continue
        if list_indent is not None and s and not s.startswith("#"):
            if indent >= list_indent:
                continue  # a key inside a list item: part of the list's default
            list_indent = None
        if s.startswith("# --"):
            desc = [s[4:].strip()]
            continue
        if s.startswith("#") and desc:
            desc.append(s[1:].strip())
            continue
        m = ROW.match(line)
        if not m or s.startswith("-"):
            if not s.startswith("#"):
                desc = []
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = m.group(2).strip('"')
        stack.append((indent, key))
        out.append((".".join(k for _, k in stack), " ".join(desc)))
        desc = []
    return out


def lookup(values, path):
    v = values
    for part in path.split("."):
        v = v[part]
    return v


def leaves(values, schema, desc, prefix=""):
    """Paths of the rows of the table: leaves, empty maps, passthrough maps and maps
    described as a whole (a `# --` comment on the map's own key)."""
    for k, v in values.items():
        p = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v and p not in PASSTHROUGH and not schema_is_open(schema, p) and not desc.get(p):
            yield from leaves(v, schema, desc, p)
        else:
            yield p


def schema_at(schema, path):
    s = schema
    for part in path.split("."):
        props = s.get("properties") or {}
        if part not in props:
            return None
        s = props[part]
    return s


def schema_is_open(schema, path):
    s = schema_at(schema, path)
    return s is not None and s.get("type") == "object" and "properties" not in s


def values_table(chart):
    values_text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(values_text)
    schema = json.loads((chart / "values.schema.json").read_text())
    desc = dict(described_keys(values_text))
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for p in leaves(values, schema, desc):
        v = lookup(values, p)
        if not desc.get(p):
            fail(f"values.yaml: `{p}` has no `# --` description")
        s = schema_at(schema, p) or {}
        t = s.get("type") or ("/".join(sorted({x.get("type", "?") for x in s.get("anyOf", [])})) if "anyOf" in s else "?")
        if isinstance(t, list):
            t = "/".join(t)
        default = json.dumps(v, separators=(", ", ": ")).replace("|", "\\|")
        text = desc.get(p, "").replace("|", "\\|")
        rows.append(f"| `{p}` | {t} | `{default}` | {text} |")
    return "\n".join(rows)


def check_schema_strict(schema, path=""):
    if schema.get("type") == "object" and "properties" in schema:
        if path not in PASSTHROUGH and schema.get("additionalProperties") is not False:
            fail(f"values.schema.json: `{path or '(root)'}` allows unknown keys")
        for k, sub in schema["properties"].items():
            check_schema_strict(sub, f"{path}.{k}" if path else k)


def cmd_values(chart_dir, write=False):
    chart = Path(chart_dir)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    check_schema_strict(schema)
    for p, _ in described_keys((chart / "values.yaml").read_text()):
        if schema_at(schema, p) is None and not any(p.startswith(x + ".") for x in PASSTHROUGH) \
                and not any(p.startswith(x + ".") for x in schema_open_paths(schema)):
            fail(f"values.schema.json: no schema for `{p}`")
    jsonschema.Draft7Validator.check_schema(schema)
    for e in jsonschema.Draft7Validator(schema).iter_errors(values):
        fail(f"values.yaml does not meet values.schema.json: {e.message}")
    table = values_table(chart)
    readme = chart / "README.md"
    text = readme.read_text()
    start, end = "<!-- values-table:start -->", "<!-- values-table:end -->"
    if start not in text or end not in text:
        fail(f"{readme}: no {start} … {end} markers")
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{start}\n{table}\n{end}{tail}"
    if write:
        readme.write_text(new)
    elif new != text:
        fail(f"{readme}: the values table is out of date; run: scripts/test-deploy.py values {chart_dir} --write (with the tools venv)")


def schema_open_paths(schema, path=""):
    out = []
    if schema.get("type") == "object" and "properties" not in schema:
        out.append(path)
    for k, sub in (schema.get("properties") or {}).items():
        out.extend(schema_open_paths(sub, f"{path}.{k}" if path else k))
    return out


# ---- compose ---------------------------------------------------------------------------

def cmd_compose(deploy_dir):
    d = Path(deploy_dir)
    compose = yaml.safe_load((d / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            ctx = (d / build["context"]).resolve()
            if not (ctx / build["dockerfile"]).is_file():
                fail(f"compose {name}: no Dockerfile {build['dockerfile']} in {ctx}")
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                if not (d / src).exists():
                    fail(f"compose {name}: mounts {src}, which does not exist")
            elif src not in (compose.get("volumes") or {}):
                fail(f"compose {name}: volume {src} is not declared")
    prom = yaml.safe_load((d / "prometheus" / "prometheus.yml").read_text())
    hosts = set()
    for job in prom["scrape_configs"]:
        for sc in job.get("static_configs", []):
            hosts.update(t.rsplit(":", 1)[0] for t in sc["targets"])
        for sd in job.get("dns_sd_configs", []):
            hosts.update(sd["names"])
    for h in hosts - {"localhost"}:
        if h not in services:
            fail(f"prometheus.yml scrapes {h}, which is not a compose service")
    for wanted in ("collector", "agent"):
        if wanted not in hosts:
            fail(f"prometheus.yml does not scrape {wanted}")
    ds = yaml.safe_load((d / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    url = ds["datasources"][0]["url"]
    if not url.startswith("http://prometheus:"):
        fail(f"grafana datasource url {url} is not the compose prometheus service")
    prov = yaml.safe_load((d / "grafana/provisioning/dashboards/llmscope.yaml").read_text())
    path = prov["providers"][0]["options"]["path"]
    mounts = [v.split(":") for v in services["grafana"]["volumes"]]
    if not any(m[1] == path and (d / m[0]).resolve() == (d / "grafana/dashboards").resolve() for m in mounts):
        fail(f"grafana: the provider path {path} is not where deploy/grafana/dashboards is mounted")
    home = services["grafana"]["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
    if home and not (d / "grafana/dashboards" / Path(home).name).is_file():
        fail(f"grafana: home dashboard {home} does not exist")


# ---- dockerfiles -----------------------------------------------------------------------

def rust_default(path, pattern):
    m = re.search(pattern, Path(path).read_text())
    return m.group(1) if m else None


def cmd_dockerfiles(repo):
    r = Path(repo)
    grpc = rust_default(r / "collector/src/config.rs", r'DEFAULT_GRPC_LISTEN: &str = "[^"]*:(\d+)"')
    http = rust_default(r / "collector/src/config.rs", r'DEFAULT_HTTP_LISTEN: &str = "[^"]*:(\d+)"')
    agent = rust_default(r / "agent/src/config.rs", r'http_listen: "[^"]*:(\d+)"')
    for name, want in (("collector", {grpc, http}), ("agent", {agent})):
        text = (r / f"deploy/docker/{name}.Dockerfile").read_text()
        exposed = set(" ".join(re.findall(r"^EXPOSE\s+(.+)$", text, re.M)).split())
        if None in want or exposed != want:
            fail(f"{name}.Dockerfile: EXPOSE {sorted(exposed)} but the Rust defaults are {sorted(map(str, want))}")
        if not re.search(r"^USER\s+[1-9]", text, re.M):
            fail(f"{name}.Dockerfile: runs as root")
        for src in re.findall(r"^COPY\s+(?!--from)(\S+)\s", text, re.M):
            if src != "." and not (r / src).exists():
                fail(f"{name}.Dockerfile: COPY source {src} does not exist")
        for src in re.findall(r"^COPY\s+(\S+)\s+(\S+)\s+\./$", text, re.M):
            for s in src:
                if not (r / s).exists():
                    fail(f"{name}.Dockerfile: COPY source {s} does not exist")
    text = (r / "deploy/docker/agent.Dockerfile").read_text()
    m = re.search(r"LLMSCOPE_AGENT_HTTP_LISTEN=\S*:(\d+)", text)
    if not m or m.group(1) != agent:
        fail("agent.Dockerfile: LLMSCOPE_AGENT_HTTP_LISTEN does not use the exposed port")
    ignore = (r / ".dockerignore").read_text().split()
    for must in ("target", "**/node_modules", "web/dist"):
        if must not in ignore:
            fail(f".dockerignore: {must} is not excluded")


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "manifests":
        cmd_manifests(*args)
    elif cmd == "configs":
        cmd_configs(*args)
    elif cmd == "expect":
        cmd_expect(*args)
    elif cmd == "values":
        cmd_values(args[0], "--write" in args)
    elif cmd == "compose":
        cmd_compose(*args)
    elif cmd == "dockerfiles":
        cmd_dockerfiles(*args)
    else:
        print(__doc__)
        return 2
    for p in PROBLEMS:
        print(f"  FAIL {p}", file=sys.stderr)
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
