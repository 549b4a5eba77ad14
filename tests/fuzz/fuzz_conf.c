/*
 * The pipeline file loader (common/sl_conf.c): YAML into the tree, ${VAR} and ${VAR:-default}
 * expansion, and every typed read of every value. The input is the file. A few variables are
 * set (one empty, one holding "${" so that a value expanded once is never expanded again).
 * Every node the tree holds must have a key path and a line, and every scalar must read as a
 * string (or fail naming an unset variable) and go through the duration and size parsers.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sl_conf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("FUZZ_A", "value-a", 1);
    setenv("FUZZ_EMPTY", "", 1);
    setenv("FUZZ_NESTED", "${FUZZ_A}", 1);
    unsetenv("FUZZ_UNSET");
    return 0;
}

static void walk(const sl_conf_t *conf, const sl_conf_node_t *node, int depth)
{
    if (depth > SL_CONF_MAX_DEPTH + 1)
        fuzz_fail("a tree deeper than SL_CONF_MAX_DEPTH was loaded");
    if (!sl_conf_keypath(node) || sl_conf_line(node) < 1)
        fuzz_fail("a node without a key path or line");
    struct sl_err err;
    switch (sl_conf_type(node)) {
    case SL_CONF_SCALAR: {
        const char *s = NULL;
        long long v;
        if (sl_conf_as_str(conf, node, &s, &err) != 0) {
            if (!strstr(err.msg, "environment variable"))
                fuzz_fail("a scalar does not read as a string: %s", err.msg);
            break;
        }
        (void)sl_conf_parse_duration_ms(s, &v);
        (void)sl_conf_parse_size(s, &v);
        break;
    }
    case SL_CONF_MAP:
        for (size_t i = 0; i < sl_conf_count(node); i++) {
            const char *key = sl_conf_key(node, i);
            const sl_conf_node_t *child = sl_conf_item(node, i);
            if (!key)
                fuzz_fail("a map entry without a key");
            if (child && sl_conf_get(node, key) != child && sl_conf_type(child) != SL_CONF_NULL)
                fuzz_fail("sl_conf_get(%s) finds another node than the entry", key);
            if (child)
                walk(conf, child, depth + 1);
            bool b;
            long long v;
            (void)sl_conf_bool(conf, node, key, false, &b, &err);
            (void)sl_conf_int(conf, node, key, 0, -1000, 1000, &v, &err);
            (void)sl_conf_duration_ms(conf, node, key, 0, 0, 3600000, &v, &err);
            (void)sl_conf_size(conf, node, key, 0, 0, 1 << 20, &v, &err);
        }
        break;
    case SL_CONF_SEQ:
        for (size_t i = 0; i < sl_conf_count(node); i++)
            if (sl_conf_item(node, i))
                walk(conf, sl_conf_item(node, i), depth + 1);
        break;
    case SL_CONF_NULL:
        break;
    }
}

static void on_unset(void *opaque, const char *var, const sl_conf_node_t *node)
{
    if (!var || !*var || strcmp(var, "FUZZ_A") == 0)
        fuzz_fail("an unset variable named \"%s\"", var ? var : "(null)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    struct sl_err err;
    sl_conf_t *conf = sl_conf_load_string("fuzz.yaml", ".", (const char *)data, size, &err);
    if (conf) {
        walk(conf, sl_conf_root(conf), 0);
        sl_conf_unset_vars(conf, on_unset, NULL);
    } else if (strncmp(err.msg, "fuzz.yaml", 9) != 0) {
        fuzz_fail("a load error that does not name the file: %s", err.msg);
    }
    sl_conf_destroy(conf);
    return 0;
}
