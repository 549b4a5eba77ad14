#!/usr/bin/env bash
# Static checks of the deployment files for users (deploy/docker, deploy/prometheus,
# deploy/grafana, helm/sluice), which nothing here can run (no Docker engine, no Helm, no
# Kubernetes): they must stay true to the code by construction.
#   - every YAML file parses (Helm templates are Go templates: only Chart.yaml and values.yaml);
#     the dashboard is JSON;
#   - every metric an alert rule or a dashboard panel queries is registered by the C sources
#     (histogram series: <name>_bucket/_sum/_count of a histogram);
#   - every binary the Dockerfile, compose.yaml and the chart name is a CMake target, and every
#     stage binary that CMake builds (ingress/, workers/) is shipped, run, deployed and scraped;
#   - every admin port (compose commands, health checks, published ports, Prometheus targets,
#     the chart's values, the image's EXPOSE) is the binary's default in the code;
#   - every ${VAR} of the example pipeline is set for the Sluice containers in compose.yaml;
#   - the image's build stage installs every -dev package of deploy/local/install-deps.sh, and
#     its runtime stage the Debian package of every shared library that a shipped binary of
#     this build tree links directly;
#   - every .Values path and every per-stage key the chart's templates use exists in values.yaml,
#     and the template actions are balanced; the chart's appVersion is the project's version.
# The checker runs on the tree (must pass), then on copies with one fault each (must fail,
# naming the fault), so that each check is shown to catch what it is for.
# shellcheck source=../testlib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testlib.sh"

# Debian's python3 has python3-yaml (deploy/local/install-deps.sh installs it).
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
"$py" -c 'import yaml' 2> /dev/null || fail "python3 with PyYAML is missing (deploy/local/install-deps.sh)"

cat > "$work/check.py" <<'PY'
import glob, json, os, re, sys
import yaml

root = sys.argv[1]
errors = []
def err(msg):
    errors.append(msg)
def read(rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()
def load_yaml(rel):
    try:
        return yaml.safe_load(read(rel))
    except yaml.YAMLError as e:
        err(f"{rel}: YAML does not parse: {str(e).splitlines()[0]}")
        return None

# ---- every YAML and JSON file parses ----
yaml_files = sorted(
    [os.path.relpath(p, root) for pat in ("deploy/docker/*.yaml", "deploy/prometheus/*.yml",
                                           "helm/sluice/*.yaml")
     for p in glob.glob(os.path.join(root, pat))])
for rel in ("deploy/docker/compose.yaml", "deploy/prometheus/prometheus.yml",
            "deploy/prometheus/alerts.yml", "helm/sluice/Chart.yaml", "helm/sluice/values.yaml"):
    if rel not in yaml_files:
        err(f"{rel}: missing")
docs = {rel: load_yaml(rel) for rel in yaml_files}
try:
    dashboard = json.loads(read("deploy/grafana/sluice.json"))
except (OSError, ValueError) as e:
    err(f"deploy/grafana/sluice.json: JSON does not parse: {e}")
    dashboard = {}
compose = docs.get("deploy/docker/compose.yaml") or {}
prom = docs.get("deploy/prometheus/prometheus.yml") or {}
alerts = docs.get("deploy/prometheus/alerts.yml") or {}
chart = docs.get("helm/sluice/Chart.yaml") or {}
values = docs.get("helm/sluice/values.yaml") or {}

# ---- what the code says ----
def sources(*dirs):
    for d in dirs:
        for p in glob.glob(os.path.join(root, d, "**", "*.[ch]"), recursive=True):
            yield p
metrics = {}  # name -> counter | gauge | histogram
reg = re.compile(r'sl_metrics_(counter|gauge|histogram)\s*\(\s*[^,()]+,\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"')
for p in sources("common", "ingress", "workers", "cli"):
    with open(p, encoding="utf-8") as f:
        for kind, name in reg.findall(f.read()):
            metrics[name] = kind
if not metrics:
    err("no sl_metrics_* registrations found in the C sources")

targets = {}  # CMake target -> the CMakeLists.txt that adds it
for p in glob.glob(os.path.join(root, "**", "CMakeLists.txt"), recursive=True):
    rel = os.path.relpath(p, root)
    if rel.startswith("build"):
        continue
    with open(p, encoding="utf-8") as f:
        for t in re.findall(r"add_executable\(\s*([A-Za-z0-9_.+-]+)", f.read()):
            targets[t] = rel
# The stage binaries: sluice-* executables of ingress/ and workers/ (not the test tools).
stages = sorted(t[len("sluice-"):] for t, rel in targets.items()
                if t.startswith("sluice-") and rel.split("/")[0] in ("ingress", "workers"))
if not stages:
    err("no stage binaries found in the CMake files")

# Default admin port of each stage, from its directory's sources.
port_re = re.compile(r'(?:\.admin_port\s*=\s*|ADMIN(?:_LISTEN)?_DEFAULT\s+"[^"]*:|'
                     r'#define\s+\w*ADMIN_PORT\s+)(\d+)')
ports = {}
for s in stages:
    d = "ingress" if s == "ingress" else os.path.join("workers", s)
    found = set()
    for p in sources(d):
        with open(p, encoding="utf-8") as f:
            found.update(int(x) for x in port_re.findall(f.read()))
    if len(found) != 1:
        err(f"{d}: expected one default admin port in the code, found {sorted(found)}")
    else:
        ports[s] = found.pop()

# sluice-admin's one listener: admin.listen's default in the key table.
m = re.search(r'\{"listen", SL_CK_STRING, "127\.0\.0\.1:(\d+)",\s*"The one listener of sluice-admin',
              read("conf/sl_pipeline.c"))
if not m:
    err("conf/sl_pipeline.c: no default of admin.listen")
else:
    ports["admin"] = int(m.group(1))
if "sluice-admin" not in targets:
    err("no sluice-admin target in the CMake files")

# ---- metrics queried by alerts and the dashboard exist ----
PROMETHEUS_OWN = {"up"}
def check_expr(where, expr):
    for name in set(re.findall(r"\b(sluice_[a-zA-Z0-9_]+)", expr)):
        if metrics.get(name) in ("counter", "gauge", "histogram"):
            if metrics[name] == "histogram":
                err(f"{where}: {name} is a histogram: query {name}_bucket/_sum/_count")
            continue
        base, _, suffix = name.rpartition("_")
        if suffix in ("bucket", "sum", "count") and metrics.get(base) == "histogram":
            continue
        err(f"{where}: metric {name} is not registered in the C sources")
    for name in set(re.findall(r"\b([a-z_:][a-zA-Z0-9_:]*)\s*\{", expr)):
        if not name.startswith("sluice_") and name not in PROMETHEUS_OWN:
            err(f"{where}: metric {name} is not registered in the C sources")
n_rules = 0
for g in alerts.get("groups") or []:
    for r in g.get("rules") or []:
        n_rules += 1
        where = f"alerts.yml: {r.get('alert', '?')}"
        if not r.get("alert") or not r.get("expr") or "severity" not in (r.get("labels") or {}):
            err(f"{where}: needs alert, expr and labels.severity")
        check_expr(where, str(r.get("expr", "")))
if n_rules == 0:
    err("alerts.yml: no rules")
n_exprs = 0
def walk_panels(panels):
    global n_exprs
    for p in panels or []:
        for t in p.get("targets") or []:
            n_exprs += 1
            check_expr(f"sluice.json: panel '{p.get('title')}'", t.get("expr", ""))
        walk_panels(p.get("panels"))
walk_panels(dashboard.get("panels"))
if n_exprs == 0:
    err("sluice.json: no panel queries")

# ---- binaries and admin ports ----
docker = read("deploy/docker/Dockerfile")
code = "\n".join(l for l in docker.splitlines() if not l.lstrip().startswith("#"))
bin_re = re.compile(r"(?<![\w/.-])(sluice-[a-z]+|sluicectl|destsim)\b")
shipped = set(bin_re.findall(code))
copied = set(re.findall(r"/build/bin/([\w-]+)", code))
for b in sorted(shipped | copied):
    if b not in targets:
        err(f"Dockerfile: {b} is not a CMake target")
for s in stages + ["admin"]:
    if f"sluice-{s}" not in copied:
        err(f"Dockerfile: binary sluice-{s} is not shipped in the image")
if "sluicectl" not in copied:
    err("Dockerfile: sluicectl is not shipped in the image")
# The image says its licence, the one of the LICENSE file at the root.
if not read("LICENSE").lstrip().startswith("Apache License\n                           Version 2.0"):
    err("LICENSE: not the Apache License 2.0 text")
if not re.search(r'org\.opencontainers\.image\.licenses="Apache-2\.0"', code):
    err("Dockerfile: no org.opencontainers.image.licenses=\"Apache-2.0\" label")
expose = set()
for line in code.splitlines():
    if line.strip().startswith("EXPOSE"):
        expose.update(int(x) for x in line.split()[1:])
for s, p in ports.items():
    if p not in expose:
        err(f"Dockerfile: EXPOSE lacks sluice-{s}'s admin port {p}")
for p in expose:
    if p not in ports.values() and p != 8080:
        err(f"Dockerfile: EXPOSE {p} is no binary's port")
# The apt-get install lists of the build stage and of the runtime stage.
stages_text = re.split(r"^FROM\s", code, flags=re.M)[1:]
def apt_packages(text):
    pkgs = set()
    for m in re.finditer(r"apt-get install((?:[^&]|&(?!&))*)", text):
        pkgs.update(w for w in m.group(1).replace("\\", " ").split() if not w.startswith("-"))
    return pkgs
if len(stages_text) != 2:
    err("Dockerfile: expected two stages (build, runtime)")
else:
    build_pkgs, runtime_pkgs = apt_packages(stages_text[0]), apt_packages(stages_text[1])
    deps = read("deploy/local/install-deps.sh")
    listed = re.search(r"^PACKAGES=\((.*?)^\)", deps, flags=re.M | re.S)
    words = [w for l in (listed.group(1) if listed else "").splitlines()
             for w in l.split("#")[0].split()]
    for w in words:
        if (w.endswith("-dev") or w in ("build-essential", "cmake", "pkg-config")) and w not in build_pkgs:
            err(f"Dockerfile: the build stage lacks {w} (deploy/local/install-deps.sh installs it)")
    # With a build tree: the runtime stage installs the package of every shared library that a
    # shipped binary links directly (readelf NEEDED, resolved by ldd, owned per dpkg).
    if len(sys.argv) > 2:
        import subprocess
        def run(*cmd):
            return subprocess.run(cmd, capture_output=True, text=True).stdout
        links = {}  # binary -> {soname: path}
        for b in sorted(copied):
            path = os.path.join(sys.argv[2], "bin", b)
            if not os.access(path, os.X_OK):
                err(f"{b}: not built in {sys.argv[2]}/bin (build the tree before testing)")
                continue
            where = dict(re.findall(r"^\s*(\S+) => (/\S+)", run("ldd", path), flags=re.M))
            links[b] = {so: where.get(so, so)
                        for so in re.findall(r"\(NEEDED\).*\[(.+)\]", run("readelf", "-d", path))}
        # Merged /usr: dpkg knows a file under the path its package shipped it at. One dpkg
        # call for every candidate path (it reports those it knows).
        def candidates(f):
            for g in (f, os.path.realpath(f)):
                yield from (g, re.sub(r"^/usr/lib/", "/lib/", g), re.sub(r"^/lib/", "/usr/lib/", g))
        paths = sorted({c for l in links.values() for f in l.values() for c in candidates(f)})
        owner = {}
        for line in run("dpkg", "-S", *paths).splitlines():
            pkgs, _, f = line.partition(": ")
            owner[f] = pkgs.split(",")[0].split(":")[0]
        for b, l in links.items():
            for so, f in sorted(l.items()):
                pkg = next((owner[c] for c in candidates(f) if c in owner), None)
                if pkg is None:
                    err(f"{b}: no Debian package owns {so}")
                # libc6 is in every Debian image; the sanitizer runtimes only in Debug trees.
                elif pkg not in runtime_pkgs and pkg != "libc6" and \
                        not re.match(r"lib(asan|ubsan)\d", pkg):
                    err(f"Dockerfile: the runtime stage lacks {pkg} ({so}, needed by {b})")

services = compose.get("services") or {}
# The ${VAR}s of the example's values (its comments mention ${VAR} too).
def scalars(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from scalars(v)
    elif isinstance(node, list):
        for v in node:
            yield from scalars(v)
    elif node is not None:
        yield str(node)
example = load_yaml("deploy/examples/pipeline.yaml")
example_vars = sorted({v for s in scalars(example)
                       for v in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", s)})
if not example_vars:
    err("deploy/examples/pipeline.yaml: no ${VAR}s found")
run_by = {}  # stage -> compose service
for name, svc in services.items():
    cmd = svc.get("command") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    if not cmd or not bin_re.fullmatch(str(cmd[0])):
        continue
    b = cmd[0]
    if b not in targets:
        err(f"compose.yaml: service {name} runs {b}, which is not a CMake target")
        continue
    env = svc.get("environment") or {}
    if b.startswith("sluice") and isinstance(env, dict):
        for v in example_vars:
            if v not in env:
                err(f"compose.yaml: service {name}: ${{{v}}} of the example pipeline is not set")
    for dep in svc.get("depends_on") or {}:
        if dep not in services:
            err(f"compose.yaml: service {name} depends on unknown service {dep}")
    if not b.startswith("sluice-"):
        continue
    s = b[len("sluice-"):]
    run_by[s] = name
    want = ports.get(s)
    args = " ".join(str(a) for a in cmd)
    # sluice-admin has one listener (--listen) for its API, console and /metrics.
    flag = "--listen" if s == "admin" else "--admin-listen"
    m = re.search(flag + r"\s+0\.0\.0\.0:(\d+)", args)
    if not m or int(m.group(1)) != want:
        err(f"compose.yaml: service {name}: {flag} 0.0.0.0:{want} expected (the code's default)")
    test = " ".join(str(x) for x in ((svc.get("healthcheck") or {}).get("test") or []))
    if f"http://127.0.0.1:{want}/readyz" not in test:
        err(f"compose.yaml: service {name}: health check must GET /readyz on admin port {want}")
    published = [str(p) for p in svc.get("ports") or []]
    if not any(p.endswith(f":{want}") for p in published):
        err(f"compose.yaml: service {name}: admin port {want} is not published")
for s in stages + ["admin"]:
    if s not in run_by:
        err(f"compose.yaml: no service runs sluice-{s}")
for name, svc in services.items():
    for dep, cond in (svc.get("depends_on") or {}).items():
        c = (cond or {}).get("condition") if isinstance(cond, dict) else None
        if c == "service_healthy" and "healthcheck" not in services.get(dep, {}):
            err(f"compose.yaml: {name} waits for {dep} to be healthy, which has no health check")

scraped = {}
for job in prom.get("scrape_configs") or []:
    for sc in job.get("static_configs") or []:
        for t in sc.get("targets") or []:
            host, _, port = str(t).rpartition(":")
            scraped[host] = int(port)
for s in stages:
    svc = run_by.get(s)
    if svc and scraped.get(svc) != ports.get(s):
        err(f"prometheus.yml: {svc}:{ports.get(s)} (sluice-{s}) is not scraped")
for host in scraped:
    if host not in services:
        err(f"prometheus.yml: target {host} is no compose service")

# ---- the chart ----
if chart.get("apiVersion") != "v2" or not chart.get("name") or not chart.get("version"):
    err("Chart.yaml: apiVersion v2, name and version are required")
m = re.search(r"project\(\s*sluice\s+VERSION\s+([0-9.]+)", read("CMakeLists.txt"))
if not m or str(chart.get("appVersion")) != m.group(1):
    err(f"Chart.yaml: appVersion {chart.get('appVersion')} is not the project's VERSION")
vstages = values.get("stages") or {}
for s in stages:
    if s not in vstages:
        err(f"values.yaml: stages.{s} is missing (sluice-{s} is not deployed)")
for s, cfg in vstages.items():
    if f"sluice-{s}" not in targets:
        err(f"values.yaml: stages.{s}: sluice-{s} is not a CMake target")
    elif (cfg or {}).get("adminPort") != ports.get(s):
        err(f"values.yaml: stages.{s}.adminPort {(cfg or {}).get('adminPort')} is not the code's default admin port {ports.get(s)}")
def resolve(tree, path):
    for k in path:
        if not isinstance(tree, dict) or k not in tree:
            return False
        tree = tree[k]
    return True
tpl_dir = os.path.join(root, "helm/sluice/templates")
tpls = sorted(glob.glob(os.path.join(tpl_dir, "*")))
if not tpls:
    err("helm/sluice/templates: no templates")
for p in tpls:
    rel = os.path.relpath(p, root)
    with open(p, encoding="utf-8") as f:
        text = f.read()
    if text.count("{{") != text.count("}}"):
        err(f"{rel}: unbalanced {{{{ }}}}")
    actions = re.findall(r"\{\{-?\s*(if|range|with|define|end|block)\b", text)
    depth = 0
    for a in actions:
        depth += -1 if a == "end" else 1
        if depth < 0:
            break
    if depth != 0:
        err(f"{rel}: if/range/with/define and end do not balance")
    for path in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
        if not resolve(values, path.split(".")[1:]):
            err(f"{rel}: .Values{path} is not in values.yaml")
    for path in re.findall(r"\$stage((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
        for s, cfg in vstages.items():
            if not resolve(cfg, path.split(".")[1:]):
                err(f"{rel}: $stage{path} is not in values.yaml stages.{s}")
    for b in set(bin_re.findall(text)):
        if b not in targets:
            err(f"{rel}: {b} is not a CMake target")

for e in errors:
    print("FAIL:", e)
print(f"{len(metrics)} metrics, {len(stages)} stages ({', '.join(f'{s}:{ports.get(s)}' for s in stages)}), "
      f"{len(example_vars)} example variables, {n_rules} alert rules, {n_exprs} panel queries")
sys.exit(1 if errors else 0)
PY

passed=0
"$py" "$work/check.py" "$SLUICE_SOURCE_DIR" "$SLUICE_BINARY_DIR" > "$work/out" ||
    { cat "$work/out"; fail "deployment files"; }
cat "$work/out"
passed=$((passed + 1))

# A copy of what the checker reads, to break one thing at a time.
copy_tree() {
    rm -rf "$work/tree"
    mkdir -p "$work/tree"
    (cd "$SLUICE_SOURCE_DIR" && tar cf - --exclude='build*' CMakeLists.txt common conf ingress \
        workers cli admin LICENSE tests/CMakeLists.txt tests/tools deploy/docker deploy/prometheus \
        deploy/grafana deploy/examples deploy/local/install-deps.sh helm) | tar xf - -C "$work/tree"
}
# must_catch NAME FILE OLD NEW EXPECTED: replaces OLD (which must be there) by NEW in FILE of a
# fresh copy, runs the checker (with the build tree when CHECK_BIN is set), expects a failure
# whose message contains EXPECTED.
must_catch() {
    local name=$1 file=$2 old=$3 new=$4 expected=$5
    copy_tree
    OLD=$old NEW=$new "$py" - "$work/tree/$file" <<'PY' || fail "$name: cannot edit $file"
import os, sys
p = sys.argv[1]
s = open(p, encoding="utf-8").read()
if os.environ["OLD"] not in s:
    sys.exit(f"{os.environ['OLD']!r} not in {p}")
open(p, "w", encoding="utf-8").write(s.replace(os.environ["OLD"], os.environ["NEW"], 1))
PY
    if "$py" "$work/check.py" "$work/tree" ${CHECK_BIN:+"$CHECK_BIN"} > "$work/out"; then
        fail "$name: the checker passed"
    fi
    grep -qF -- "$expected" "$work/out" || { cat "$work/out"; fail "$name: message"; }
    passed=$((passed + 1))
}
must_catch unknown_metric deploy/prometheus/alerts.yml \
    "sluice_deliver_circuit_state) == 2" "sluice_deliver_circuit_open) == 2" \
    "metric sluice_deliver_circuit_open is not registered"
must_catch bucket_of_counter deploy/grafana/sluice.json \
    "sluice_ingress_request_seconds_bucket" "sluice_ingress_requests_total_bucket" \
    "metric sluice_ingress_requests_total_bucket is not registered"
must_catch license_label deploy/docker/Dockerfile 'licenses="Apache-2.0"' 'licenses="MIT"' \
    'no org.opencontainers.image.licenses="Apache-2.0" label'
must_catch yaml_syntax deploy/prometheus/prometheus.yml "scrape_configs:" "scrape_configs: [" \
    "prometheus.yml: YAML does not parse"
must_catch unknown_binary deploy/docker/compose.yaml \
    '["sluice-route", "--admin-listen"' '["sluice-router", "--admin-listen"' \
    "runs sluice-router, which is not a CMake target"
must_catch compose_port deploy/docker/compose.yaml '"--admin-listen", "0.0.0.0:9183"' \
    '"--admin-listen", "0.0.0.0:9193"' "service route: --admin-listen 0.0.0.0:9183 expected"
must_catch chart_port helm/sluice/values.yaml "adminPort: 9185" "adminPort: 9195" \
    "stages.audit.adminPort 9195 is not the code's default admin port 9185"
must_catch code_port workers/route/route.c ".admin_port = 9183" ".admin_port = 9193" \
    "prometheus.yml: route:9193 (sluice-route) is not scraped"
must_catch unset_variable deploy/examples/pipeline.yaml 'dsn: "${SLUICE_PG_DSN' \
    'dsn: "${SLUICE_PG_URL' "\${SLUICE_PG_URL} of the example pipeline is not set"
must_catch unknown_value helm/sluice/templates/deployments.yaml ".Values.image.pullPolicy" \
    ".Values.image.policy" ".Values.image.policy is not in values.yaml"
must_catch unknown_stage_key helm/sluice/templates/deployments.yaml '$stage.replicas' \
    '$stage.replica' '$stage.replica is not in values.yaml stages.'
must_catch unbalanced helm/sluice/templates/pdb.yaml "{{- end }}" "" \
    "pdb.yaml: if/range/with/define and end do not balance"
must_catch new_stage ingress/CMakeLists.txt "add_executable(sluice-ingress " \
    "add_executable(sluice-extra main.c)
add_executable(sluice-ingress " "binary sluice-extra is not shipped in the image"
must_catch admin_port deploy/docker/compose.yaml '"--listen", "0.0.0.0:9190"' \
    '"--listen", "0.0.0.0:9191"' "service admin: --listen 0.0.0.0:9190 expected"
must_catch build_package deploy/docker/Dockerfile "libjansson-dev " "" \
    "the build stage lacks libjansson-dev"
CHECK_BIN=$SLUICE_BINARY_DIR must_catch runtime_package deploy/docker/Dockerfile "libjq1 " "" \
    "the runtime stage lacks libjq1"
echo "$passed passed, 0 failed"
