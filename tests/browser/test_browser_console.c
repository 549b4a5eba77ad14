/* The web console in a real browser (ctest label browser). The example pipeline runs as in the
 * e2e test: every binary as a process against the test broker, Redis and a PostgreSQL schema
 * of this run, with two destination simulators (crm, warehouse), sluice-reconcile every two
 * seconds, and sluice-admin with a viewer and an operator token. Before the browser:
 *   - a Stripe charge goes through to both destinations (the event the console searches for);
 *   - a second one while the warehouse answers 400: a dead letter at deliver, after which the
 *     warehouse answers 200 again, so that a replay from the console is delivered.
 * Then tests/browser/console.mjs (playwright-core driving Debian's chromium) checks the pages
 * while a sender keeps charges flowing (so that the overview has rates to show) until the
 * script says the overview was seen. The script writes a screenshot of each page under
 * <build>/browser-screenshots/ and prints their paths; this program fails when it fails.
 * Afterwards: the replay the console made is in PostgreSQL (dead_letter_replays, by the
 * operator's name) and the dead-lettered event was delivered to the warehouse. */
#include <jansson.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "destsim_client.h"
#include "ingress_harness.h"
#include "pg_testenv.h"
#include "sl_test.h"
#include "sl_testenv.h"
#include "transform_fixture.h"
#include "verify.h"

#define STRIPE_SECRET     "whsec_browserTestSecretOnlyForThisRun"
#define CRM_CLIENT_SECRET "browser-crm-client-secret"
#define WAIT_TENTHS       900 /* 90 s, in the 100 ms steps of the polls below */
#define TOKEN_MAX         96
#define PATH_MAX_LEN      4096

/* Every binary of the pipeline, by the name sluice-admin scrapes it under; ingress first. */
static const char *const stages[] = {"ingress", "validate", "transform",  "route",
                                     "deliver", "audit",    "deadletter", "reconcile"};
#define N_STAGES (sizeof(stages) / sizeof(stages[0]))

static const char *const topics[] = {"ingress",           "validated", "normalized", "deliver.crm",
                                     "deliver.warehouse", "dlq",       "audit",      "outcomes"};

/* The hex SHA-256 of `s` into out[65]: how admin.tokens names a token. */
static void sha256_hex(const char *s, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    SL_REQUIRE(EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) == 1 && n == 32);
    for (unsigned int i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* The example pipeline for this run, at `path`: schema_dir made absolute (the example's is
 * relative to its own directory), reconcile every 2 s instead of every minute, and an admin
 * section of this run's (listener, tokens, each stage's admin address) in place of the
 * example's, if it has one. */
static void write_config(const char *path, const char *admin_yaml)
{
    char example[PATH_MAX_LEN], line[4096];
    snprintf(example, sizeof(example), "%s/deploy/examples/pipeline.yaml", sl_test_source_dir());
    FILE *in = fopen(example, "r"), *out = fopen(path, "w");
    SL_REQUIRE(in && out);
    bool in_admin = false, in_reconcile = false;
    while (fgets(line, sizeof(line), in)) {
        bool top = line[0] != ' ' && line[0] != '#' && line[0] != '\n';
        if (top) {
            in_admin = strncmp(line, "admin:", 6) == 0;
            in_reconcile = strncmp(line, "reconcile:", 10) == 0;
        }
        if (in_admin)
            continue;
        if (strncmp(line, "schema_dir:", 11) == 0)
            fprintf(out, "schema_dir: %s/schemas\n", sl_test_source_dir());
        else if (in_reconcile && strncmp(line, "  interval:", 11) == 0)
            fputs("  interval: 2s\n", out);
        else
            fputs(line, out);
    }
    fputs(admin_yaml, out);
    fclose(in);
    SL_REQUIRE(fclose(out) == 0);
}

/* POSTs `charge` (the Stripe charge fixture) with its provider id set to `provider_id`, signed
 * as Stripe signs; the event id ingress answered goes into id[size]. Returns the HTTP status,
 * -1 when the request could not be made. No test macro: the sender's child calls it too. */
static long post_charge(json_t *charge, int port, const char *provider_id, char *id, size_t size)
{
    json_t *in = json_deep_copy(charge);
    char *body = NULL;
    size_t len;
    long status = -1;
    char sig[VERIFY_SIGNATURE_OUT_MAX], sig_header[VERIFY_SIGNATURE_OUT_MAX + 32];
    struct sl_err err;
    static struct http_reply reply;
    if (!in || json_object_set_new(json_object_get(in, "data"), "id", json_string(provider_id)))
        goto out;
    body = tf_payload(in, &len);
    if (verify_sign_stripe(STRIPE_SECRET, (long)time(NULL), body, len, sig, sizeof(sig), &err))
        goto out;
    snprintf(sig_header, sizeof(sig_header), "Stripe-Signature: %s", sig);
    const char *headers[] = {"Content-Type: application/json", sig_header, NULL};
    status = http_request(port, "POST", "/v1/events/stripe", headers, body, len, &reply);
    if (status == 202 && !http_accepted_id(&reply, id, size))
        status = -1;
out:
    free(body);
    json_decref(in);
    return status;
}

/* A child that posts a charge every 200 ms until `stop_file` exists (5 minutes at most): the
 * traffic the overview's rates come from while the browser looks at it. It dies with the test. */
static pid_t start_sender(json_t *charge, int port, const char *stop_file, const char *tag)
{
    fflush(stdout);
    pid_t parent = getpid(), pid = fork();
    SL_REQUIRE(pid >= 0);
    if (pid != 0)
        return pid;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    struct stat st;
    char provider_id[128], id[128];
    for (int i = 0; i < 1500 && stat(stop_file, &st) != 0; i++) {
        snprintf(provider_id, sizeof(provider_id), "evt_%sload%d", tag, i);
        post_charge(charge, port, provider_id, id, sizeof(id));
        usleep(200000);
    }
    _exit(0);
}

/* Creates `stop_file` and waits for the sender; its exit status. */
static int stop_sender(pid_t sender, const char *stop_file)
{
    FILE *f = fopen(stop_file, "a");
    SL_REQUIRE(f && fclose(f) == 0);
    int status;
    SL_REQUIRE(waitpid(sender, &status, 0) == sender);
    unlink(stop_file);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs tests/browser/console.mjs with `env` added (NULL-terminated "NAME=value"s); its exit
 * status (0: every check passed). */
static int run_console_script(char *const *env)
{
    char script[PATH_MAX_LEN];
    snprintf(script, sizeof(script), "%s/tests/browser/console.mjs", sl_test_source_dir());
    fflush(stdout);
    pid_t pid = fork();
    SL_REQUIRE(pid >= 0);
    if (pid == 0) {
        for (size_t i = 0; env[i]; i++)
            putenv(env[i]);
        execlp("node", "node", script, (char *)NULL);
        perror("node");
        _exit(127);
    }
    int status;
    SL_REQUIRE(waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

SL_TEST(console_shows_the_pipeline_and_replays_a_dead_letter)
{
    char prefix[128], topic[256], tag[64];
    sl_testenv_unique("sluice-test-browser", prefix, sizeof(prefix) - 1);
    strcat(prefix, ".");
    /* Provider ids of this run: the example's schema allows only ^evt_[A-Za-z0-9]+$. */
    snprintf(tag, sizeof(tag), "%lx%x", (unsigned long)time(NULL), (unsigned)getpid());
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        snprintf(topic, sizeof(topic), "%s%s", prefix, topics[i]);
        sl_testenv_create_topic(topic, 3);
    }
    /* The destinations and the example's ${VAR}s. */
    struct sl_err err;
    char url[512], schema[64], dsn[PG_TEST_DSN_MAX];
    const char *crm_args[] = {"--oauth-client", "sluice:" CRM_CLIENT_SECRET, "--require-bearer",
                              NULL};
    destsim_t *crm = destsim_start(NULL, crm_args, &err);
    SL_REQUIRE(crm);
    destsim_t *warehouse = destsim_start(NULL, NULL, &err);
    SL_REQUIRE(warehouse);
    setenv("SLUICE_TOPIC_PREFIX", prefix, 1);
    setenv("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET, 1);
    setenv("CRM_WEBHOOK_SECRET", "browser-crm-webhook-secret", 1);
    setenv("GITHUB_WEBHOOK_SECRET", "browser-github-secret", 1);
    snprintf(url, sizeof(url), "%s/crm/payments", destsim_url(crm));
    setenv("CRM_API_URL", url, 1);
    snprintf(url, sizeof(url), "%s/_sim/oauth/token", destsim_url(crm));
    setenv("CRM_TOKEN_URL", url, 1);
    setenv("CRM_CLIENT_SECRET", CRM_CLIENT_SECRET, 1);
    setenv("CRM_SIGNING_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
    snprintf(url, sizeof(url), "%s/ingest", destsim_url(warehouse));
    setenv("WAREHOUSE_URL", url, 1);
    setenv("WAREHOUSE_TOKEN", "browser-warehouse-token", 1);
    pg_test_schema(schema, dsn);
    setenv("SLUICE_PG_DSN", dsn, 1);
    sl_pg_t *pg = pg_test_handle(dsn, 0);
    pg_test_migrate(pg);

    /* Ports, tokens and the pipeline file with the admin section. */
    int http_port = sl_testenv_free_port(), admin_port = sl_testenv_free_port(), ports[N_STAGES];
    char operator_token[TOKEN_MAX], viewer_token[TOKEN_MAX], op_hash[65], viewer_hash[65];
    sl_testenv_unique("operator-token", operator_token, sizeof(operator_token));
    sl_testenv_unique("viewer-token", viewer_token, sizeof(viewer_token));
    sha256_hex(operator_token, op_hash);
    sha256_hex(viewer_token, viewer_hash);
    char admin_yaml[4096], config[PATH_MAX_LEN];
    int n = snprintf(admin_yaml, sizeof(admin_yaml),
                     "admin:\n  listen: \"127.0.0.1:%d\"\n  tokens:\n"
                     "    - { name: olivia, sha256: \"%s\", role: operator }\n"
                     "    - { name: victor, sha256: \"%s\", role: viewer }\n  stages:\n",
                     admin_port, op_hash, viewer_hash);
    for (size_t i = 0; i < N_STAGES; i++) {
        ports[i] = sl_testenv_free_port();
        n += snprintf(admin_yaml + n, sizeof(admin_yaml) - (size_t)n, "    %s: \"127.0.0.1:%d\"\n",
                      stages[i], ports[i]);
        SL_REQUIRE(n < (int)sizeof(admin_yaml));
    }
    snprintf(config, sizeof(config), "%s/tests/browser-pipeline.yaml", sl_test_binary_dir());
    write_config(config, admin_yaml);

    /* Every binary, then sluice-admin. */
    pid_t pids[N_STAGES + 1];
    for (size_t i = 0; i < N_STAGES; i++) {
        char name[64], log[64], listen[64], admin[64], group[128];
        snprintf(name, sizeof(name), "sluice-%s", stages[i]);
        snprintf(log, sizeof(log), "browser-%s", stages[i]);
        snprintf(admin, sizeof(admin), "127.0.0.1:%d", ports[i]);
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", http_port);
        sl_testenv_unique(stages[i], group, sizeof(group));
        const char *args[8] = {"--config", config, "--admin-listen", admin};
        /* Each consuming stage gets a group of this run; deliver's groups are per destination
         * and named after the prefix; ingress listens; reconcile is no consumer. */
        if (strcmp(stages[i], "ingress") == 0) {
            args[4] = "--listen";
            args[5] = listen;
        } else if (strcmp(stages[i], "deliver") != 0 && strcmp(stages[i], "reconcile") != 0) {
            args[4] = "--group";
            args[5] = group;
        }
        pids[i] = sl_testenv_spawn(name, args, log);
    }
    const char *admin_args[] = {"--config", config, NULL};
    pids[N_STAGES] = sl_testenv_spawn("sluice-admin", admin_args, "browser-admin");
    char body[1024];
    SL_REQUIRE(sl_testenv_wait_ready(ports[0], 200, "", body, sizeof(body)) == 200);
    SL_REQUIRE(sl_testenv_wait_ready(admin_port, 200, "", body, sizeof(body)) == 200);

    /* One charge delivered to both destinations. */
    char sql[1024], delivered_id[128], dead_id[128], provider_id[128];
    snprintf(provider_id, sizeof(provider_id), "evt_%sdelivered", tag);
    json_t *charge = tf_load("stripe-charge-to-payment", "input");
    SL_REQUIRE(post_charge(charge, http_port, provider_id, delivered_id, sizeof(delivered_id)) ==
               202);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM event_status WHERE event_id = '%s' AND state = 'delivered'",
             delivered_id);
    SL_REQUIRE(pg_test_wait_int(pg, sql, 2) == 2);
    /* One dead-lettered at the warehouse (400 is not retried), which then recovers. */
    SL_REQUIRE(destsim_set_rules(warehouse, "status=400\n", &err) == 0);
    snprintf(provider_id, sizeof(provider_id), "evt_%sdead", tag);
    SL_REQUIRE(post_charge(charge, http_port, provider_id, dead_id, sizeof(dead_id)) == 202);
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(max(id), -1) FROM dead_letters WHERE event_id = '%s' AND status = "
             "'new'",
             dead_id);
    long long dl_id = -1;
    for (int i = 0; dl_id < 0 && i < WAIT_TENTHS; i++, usleep(100000))
        dl_id = pg_test_int(pg, sql);
    SL_REQUIRE(dl_id > 0);
    SL_REQUIRE(destsim_set_rules(warehouse, "status=200\n", &err) == 0);

    /* The browser, with charges flowing until it has seen the overview's rates. */
    char dir[PATH_MAX_LEN], stop_file[PATH_MAX_LEN];
    snprintf(dir, sizeof(dir), "%s/browser-screenshots", sl_test_binary_dir());
    snprintf(stop_file, sizeof(stop_file), "%s/tests/%s.overview-seen", sl_test_binary_dir(), tag);
    pid_t sender = start_sender(charge, http_port, stop_file, tag);
    char e_url[128], e_op[160], e_viewer[160], e_event[192], e_dead[192], e_dl[64], e_dir[4200],
        e_stop[4200];
    snprintf(e_url, sizeof(e_url), "SLUICE_ADMIN_URL=http://127.0.0.1:%d/", admin_port);
    snprintf(e_op, sizeof(e_op), "SLUICE_OPERATOR_TOKEN=%s", operator_token);
    snprintf(e_viewer, sizeof(e_viewer), "SLUICE_VIEWER_TOKEN=%s", viewer_token);
    snprintf(e_event, sizeof(e_event), "SLUICE_EVENT_ID=%s", delivered_id);
    snprintf(e_dead, sizeof(e_dead), "SLUICE_DEAD_EVENT_ID=%s", dead_id);
    snprintf(e_dl, sizeof(e_dl), "SLUICE_DEAD_LETTER_ID=%lld", dl_id);
    snprintf(e_dir, sizeof(e_dir), "SLUICE_SCREENSHOT_DIR=%s", dir);
    snprintf(e_stop, sizeof(e_stop), "SLUICE_OVERVIEW_SEEN_FILE=%s", stop_file);
    char *env[] = {e_url, e_op, e_viewer, e_event, e_dead, e_dl, e_dir, e_stop, NULL};
    SL_CHECK_INT(run_console_script(env), 0);
    SL_CHECK_INT(stop_sender(sender, stop_file), 0); /* when the script could not stop it */

    /* What the console did is in the database: the operator's replay, then the delivery. */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM dead_letter_replays WHERE dead_letter_id = %lld AND "
             "replayed_by LIKE '%%olivia%%'",
             dl_id);
    SL_CHECK_INT(pg_test_int(pg, sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM event_status WHERE event_id = '%s' AND destination = "
             "'warehouse' AND state = 'delivered'",
             dead_id);
    SL_CHECK_INT(pg_test_wait_int(pg, sql, 1), 1);

    for (size_t i = 0; i <= N_STAGES; i++)
        SL_CHECK_INT(sl_testenv_stop(pids[i], SIGTERM, 60000), 0);
    SL_CHECK_INT(destsim_stop(crm), 0);
    SL_CHECK_INT(destsim_stop(warehouse), 0);
    sl_pg_destroy(pg);
    json_decref(charge);
}

int main(void)
{
    int rc = sl_test_run_all();
    pg_test_cleanup();
    return rc;
}
