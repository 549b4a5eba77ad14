/*
 * sluice-passthrough: a stage that copies every event unchanged from one topic to another on
 * the shared loop. It is the reference the stage benchmarks measure against (the loop's own
 * cost: consume, transaction, produce) and the subject of the exactly-once test.
 *
 * Topics (without prefix) from SLUICE_PASSTHROUGH_INPUT and SLUICE_PASSTHROUGH_OUTPUT
 * (defaults: ingress -> validated). SLUICE_PASSTHROUGH_AS=<stage> makes it stand in for that
 * stage: its name, consumer group and `<stage>.loop` settings, so a benchmark measures the
 * loop exactly as the real stage runs it. Everything else as every worker (worker_main.h).
 *
 * Two hooks let the loop's tests drive every verdict through a real process:
 *   SLUICE_PASSTHROUGH_DOWN_FILE=F  while F exists, every event is SL_RETRY ("dependency down")
 *   a payload starting with {"reject"  is SL_REJECT with a reason and two errors
 *
 * SLUICE_PASSTHROUGH_SINK_FILE=F makes it a sink stage instead: each event's id is buffered
 * and flush() appends the buffer to F, one id per line; while the down file exists, flush()
 * (not process()) fails with a retriable error: the sink's dependency is down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sl_kafka.h"
#include "sl_log.h"
#include "worker_main.h"

static const char *output_topic;
static const char *down_file;
static const char *sink_file;

/* The sink's buffer: ids since the last flush, newline-separated. */
static char *sink_buf;
static size_t sink_len, sink_cap;

#define REJECT_MARKER "{\"reject\""

static int passthrough_init(void **ctx, const struct sl_stage_env *env, struct sl_err *err)
{
    *ctx = NULL;
    return 0;
}

static enum sl_verdict passthrough_process(void *ctx, const struct sl_event *in,
                                           struct sl_emit *out)
{
    struct sl_err err;
    if (sink_file) {
        const char *id = sl_ce_get(in->ce, "id");
        size_t n = strlen(id);
        if (sink_len + n + 1 > sink_cap) {
            size_t cap = sink_cap ? sink_cap * 2 : 4096;
            while (cap < sink_len + n + 1)
                cap *= 2;
            char *p = realloc(sink_buf, cap);
            if (!p) {
                sl_emit_reason(out, "out of memory");
                return SL_RETRY;
            }
            sink_buf = p;
            sink_cap = cap;
        }
        memcpy(sink_buf + sink_len, id, n);
        sink_buf[sink_len + n] = '\n';
        sink_len += n + 1;
        return SL_PASS;
    }
    if (down_file && access(down_file, F_OK) == 0) {
        sl_emit_reason(out, "dependency down (%s exists)", down_file);
        return SL_RETRY;
    }
    if (in->len >= strlen(REJECT_MARKER) &&
        memcmp(in->data, REJECT_MARKER, strlen(REJECT_MARKER)) == 0) {
        sl_emit_reason(out, "rejected on request");
        sl_emit_error(out, "/reject: the payload asked for it");
        sl_emit_error(out, "/: second error");
        return SL_REJECT;
    }
    if (sl_emit_record(out, output_topic, in->ce, in->key, in->key_len, in->data, in->len, &err) !=
        0) {
        sl_emit_reason(out, "%s", err.msg);
        return SL_REJECT;
    }
    return SL_PASS;
}

static int sink_flush(void *ctx, struct sl_err *err)
{
    if (down_file && access(down_file, F_OK) == 0)
        return sl_err_retriable(err, SL_ERR_UNAVAILABLE, "sink down (%s exists)", down_file);
    FILE *f = fopen(sink_file, "a");
    if (!f)
        return sl_err_retriable(err, SL_ERR_IO, "cannot open %s", sink_file);
    bool ok =
        fwrite(sink_buf, 1, sink_len, f) == sink_len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    fclose(f);
    if (!ok)
        return sl_err_retriable(err, SL_ERR_IO, "cannot write %s", sink_file);
    sink_len = 0;
    return 0;
}

static void sink_discard(void *ctx)
{
    sink_len = 0;
}

static void passthrough_fini(void *ctx)
{
    free(sink_buf);
}

int main(int argc, char **argv)
{
    const char *input = getenv("SLUICE_PASSTHROUGH_INPUT");
    const char *as = getenv("SLUICE_PASSTHROUGH_AS");
    output_topic = getenv("SLUICE_PASSTHROUGH_OUTPUT");
    down_file = getenv("SLUICE_PASSTHROUGH_DOWN_FILE");
    sink_file = getenv("SLUICE_PASSTHROUGH_SINK_FILE");
    const struct sl_stage stage = {
        .name = as ? as : "passthrough",
        .description = "Copies events unchanged from one topic to another (tests, benchmarks).",
        .input = input ? input : SL_TOPIC_INGRESS,
        .admin_port = 9189,
        .init = passthrough_init,
        .kind = sink_file ? SL_STAGE_SINK : SL_STAGE_KAFKA,
        .process = passthrough_process,
        .flush = sink_flush,
        .discard = sink_discard,
        .fini = passthrough_fini,
    };
    if (!output_topic)
        output_topic = SL_TOPIC_VALIDATED;
    return worker_main(argc, argv, &stage);
}
