/*
 * Destination URL templates (workers/deliver/template.c): the URL with its {{ jq }} parts on the
 * first line of the input, the event (JSON; a fixed one when the rest does not parse) after it.
 * A rendered URL must keep the configured text before the first part (so a value can never
 * change the scheme or the host) and stay within DLV_URL_MAX.
 *
 * Leaks inside libjq are not reported: jq 1.6's lexer leaks a token on some malformed programs
 * (an unterminated string: `http://h/{{ "abc }}`), with no Sluice code involved; a program of
 * a few lines that only calls jq_compile shows it. sl_expr's own leaks are test_expr's to find,
 * under the sanitizer build.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "template.h"

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libjq.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return 0;
    const uint8_t *rest;
    size_t rest_len;
    char *text = fuzz_first_line(data, size, &rest, &rest_len);
    json_t *event = rest_len ? json_loadb((const char *)rest, rest_len, 0, NULL) : NULL;
    if (!event)
        event = json_pack("{s:s, s:s, s:{s:s, s:i, s:f}}", "id", "ev-1", "type", "t", "data",
                          "customer", "cus/1 \xc3\xa9?&=", "n", 42, "x", 1.5);
    struct sl_err err;
    dlv_template_t *t = dlv_template_new("fuzz.url", text, &err);
    if (t) {
        char *url = dlv_template_render(t, event, &err);
        const char *part = strstr(text, "{{");
        size_t fixed = part ? (size_t)(part - text) : strlen(text);
        if (url && (strncmp(url, text, fixed) != 0 || strlen(url) > DLV_URL_MAX))
            fuzz_fail("template %.200s rendered as %.200s", text, url);
        free(url);
    }
    dlv_template_destroy(t);
    json_decref(event);
    free(text);
    return 0;
}
