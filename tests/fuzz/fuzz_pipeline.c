/*
 * The whole pipeline file as every binary loads it (conf/sl_pipeline.c: the key table check,
 * the cross-section rules, the topics the file implies), from the input as the file's text.
 * sl_pipeline_load() takes a path; this runs the same three steps over a buffer. Errors must
 * name the file.
 */
#include <string.h>

#include "fuzz.h"
#include "sl_pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    struct sl_err err;
    struct sl_kafka_settings kafka;
    struct sl_topic_spec *specs = NULL;
    size_t n = 0;
    sl_conf_t *conf = sl_conf_load_string("fuzz.yaml", ".", (const char *)data, size, &err);
    if (!conf || sl_conf_check(conf, sl_pipeline_keys, &err) != 0 ||
        sl_pipeline_check(conf, &err) != 0) {
        if (strncmp(err.msg, "fuzz.yaml", 9) != 0)
            fuzz_fail("a pipeline error that does not name the file: %s", err.msg);
        goto out;
    }
    if (sl_kafka_settings_load(conf, &kafka, &err) == 0 &&
        sl_pipeline_topics(conf, &kafka, &specs, &n, &err) == 0)
        sl_pipeline_topics_free(specs, n);
out:
    sl_conf_destroy(conf);
    return 0;
}
