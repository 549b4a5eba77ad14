/* The pipeline end to end with the shipped example (deploy/examples/pipeline.yaml, unchanged):
 * sluice-ingress, sluice-validate, sluice-transform and sluice-route as processes against the
 * test broker and Redis. A Stripe-signed charge.succeeded posted to the ingress reaches
 * <prefix>deliver.crm and <prefix>deliver.warehouse normalized to payment.succeeded, exactly as
 * the transform fixture expects, with the id the ingress answered and the route's name. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingress_harness.h"
#include "sl_test.h"
#include "sl_testenv.h"
#include "transform_fixture.h"
#include "verify.h"

#define STRIPE_SECRET "whsec_e2eTestSecretOnlyForThisRun0123"

static const char *const stages[] = {"validate", "transform", "route"};
#define N_STAGES (sizeof(stages) / sizeof(stages[0]))

/* Polls GET /readyz on `port` until 200 (60 s at most). */
static bool wait_ready(int port)
{
    char body[1024];
    for (int i = 0; i < 600; i++) {
        if (sl_testenv_http_get(port, "/readyz", body, sizeof(body)) == 200)
            return true;
        usleep(100000);
    }
    return false;
}

SL_TEST(stripe_charge_reaches_both_destinations_normalized)
{
    char prefix[128], topic[256], config[4096], listen[64], admin[64], group[128];
    sl_testenv_unique("sluice-test-e2e", prefix, sizeof(prefix) - 1);
    strcat(prefix, ".");
    static const char *const topics[] = {
        "ingress", "validated", "normalized", "deliver.crm", "deliver.warehouse", "dlq", "audit"};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        snprintf(topic, sizeof(topic), "%s%s", prefix, topics[i]);
        sl_testenv_create_topic(topic, 3);
    }
    /* The example's ${VAR}s: this run's topics, and the secrets the ingress verifies with. */
    snprintf(config, sizeof(config), "%s/deploy/examples/pipeline.yaml", sl_test_source_dir());
    setenv("SLUICE_TOPIC_PREFIX", prefix, 1);
    setenv("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET, 1);
    setenv("CRM_WEBHOOK_SECRET", "e2e-crm-secret", 1);
    setenv("GITHUB_WEBHOOK_SECRET", "e2e-github-secret", 1);

    int http_port = sl_testenv_free_port(), admin_port[N_STAGES + 1];
    pid_t pids[N_STAGES + 1];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", http_port);
    admin_port[0] = sl_testenv_free_port();
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", admin_port[0]);
    const char *ingress_args[] = {"--config",       config, "--listen", listen,
                                  "--admin-listen", admin,  NULL};
    pids[0] = sl_testenv_spawn("sluice-ingress", ingress_args, "e2e-ingress");
    for (size_t i = 0; i < N_STAGES; i++) {
        char name[64], log[64];
        admin_port[i + 1] = sl_testenv_free_port();
        snprintf(admin, sizeof(admin), "127.0.0.1:%d", admin_port[i + 1]);
        snprintf(name, sizeof(name), "sluice-%s", stages[i]);
        snprintf(log, sizeof(log), "e2e-%s", stages[i]);
        sl_testenv_unique(stages[i], group, sizeof(group));
        const char *args[] = {"--config", config, "--group", group, "--admin-listen", admin, NULL};
        pids[i + 1] = sl_testenv_spawn(name, args, log);
    }
    SL_REQUIRE(wait_ready(admin_port[0]));

    /* The webhook, signed as Stripe signs it. */
    json_t *in = tf_load("stripe-charge-to-payment", "input");
    json_t *want = tf_load("stripe-charge-to-payment", "expected");
    size_t len;
    char *body = tf_payload(in, &len);
    char sig[VERIFY_SIGNATURE_OUT_MAX], sig_header[VERIFY_SIGNATURE_OUT_MAX + 32];
    struct sl_err err;
    SL_REQUIRE(verify_sign_stripe(STRIPE_SECRET, (long)time(NULL), body, len, sig, sizeof(sig),
                                  &err) == 0);
    snprintf(sig_header, sizeof(sig_header), "Stripe-Signature: %s", sig);
    const char *headers[] = {"Content-Type: application/json", sig_header, NULL};
    static struct http_reply reply;
    char id[128] = "";
    SL_CHECK_INT(http_request(http_port, "POST", "/v1/events/stripe", headers, body, len, &reply),
                 202);
    SL_REQUIRE(http_accepted_id(&reply, id, sizeof(id)));

    /* It reaches both destinations of the `payments` route, normalized. */
    static const char *const dests[] = {"crm", "warehouse"};
    size_t want_len;
    char *want_payload = tf_payload(want, &want_len);
    for (size_t d = 0; d < 2; d++) {
        struct records recs;
        char buf[512];
        snprintf(topic, sizeof(topic), "%sdeliver.%s", prefix, dests[d]);
        harness_read_topic(topic, 8, 1, 90000, 2000, &recs);
        SL_CHECK_INT(recs.n, 1);
        if (recs.n >= 1) {
            const rd_kafka_message_t *m = recs.m[0];
            SL_CHECK_STR(record_header(m, "ce_id", buf, sizeof(buf)), id);
            SL_CHECK_STR(record_header(m, "ce_type", buf, sizeof(buf)), "payment.succeeded");
            SL_CHECK_STR(record_header(m, "ce_sluiceorigtype", buf, sizeof(buf)),
                         "charge.succeeded");
            SL_CHECK_STR(record_header(m, "ce_source", buf, sizeof(buf)), "stripe");
            SL_CHECK_STR(record_header(m, "ce_sluicesource", buf, sizeof(buf)), "stripe");
            SL_CHECK_STR(record_header(m, "ce_idempotencykey", buf, sizeof(buf)),
                         "evt_3QbEnch0000000042");
            SL_CHECK_STR(record_header(m, "ce_sluiceroute", buf, sizeof(buf)), "payments");
            SL_CHECK_STR(record_header(m, "content-type", buf, sizeof(buf)), "application/json");
            SL_CHECK(m->key_len == strlen(tf_key(want)) &&
                     memcmp(m->key, tf_key(want), m->key_len) == 0);
            SL_CHECK(m->len == want_len && memcmp(m->payload, want_payload, want_len) == 0);
        }
        records_free(&recs);
    }
    /* Nothing was dead-lettered on the way. */
    struct records dlq;
    snprintf(topic, sizeof(topic), "%sdlq", prefix);
    harness_read_topic(topic, 8, 0, 0, 2000, &dlq);
    SL_CHECK_INT(dlq.n, 0);
    records_free(&dlq);

    for (size_t i = 0; i <= N_STAGES; i++)
        SL_CHECK_INT(sl_testenv_stop(pids[i], SIGTERM, 60000), 0);
    free(want_payload);
    free(body);
    json_decref(in);
    json_decref(want);
}

SL_TEST_MAIN()
