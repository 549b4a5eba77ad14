#include "sl_metrics.h"

#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double sl_metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
const size_t sl_metrics_latency_buckets_n =
    sizeof(sl_metrics_latency_buckets) / sizeof(sl_metrics_latency_buckets[0]);

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* A double in an atomic 64-bit word: add by compare-and-swap. */
typedef _Atomic uint64_t atomic_double;

static double ad_load(const atomic_double *a)
{
    uint64_t bits = atomic_load_explicit(a, memory_order_relaxed);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static void ad_store(atomic_double *a, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    atomic_store_explicit(a, bits, memory_order_relaxed);
}

static void ad_add(atomic_double *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed), new_bits;
    do {
        double d;
        memcpy(&d, &old, sizeof(d));
        d += v;
        memcpy(&new_bits, &d, sizeof(new_bits));
    } while (!atomic_compare_exchange_weak_explicit(a, &old, new_bits, memory_order_relaxed,
                                                    memory_order_relaxed));
}

struct sl_series {
    struct sl_series *next;
    sl_metric_t *family;
    char *values[SL_METRICS_MAX_LABELS];
    atomic_double value; /* counter/gauge value; histogram sum */
    _Atomic uint64_t count;
    _Atomic uint64_t buckets[SL_METRICS_MAX_BUCKETS]; /* non-cumulative per bound */
};

struct sl_metric {
    struct sl_metric *next;
    enum metric_type type;
    const char *name, *help;
    const char *labels[SL_METRICS_MAX_LABELS];
    size_t n_labels;
    double bounds[SL_METRICS_MAX_BUCKETS];
    size_t n_bounds;
    pthread_mutex_t lock; /* guards series creation */
    struct sl_series *_Atomic series;
    size_t n_series;
    struct sl_series *overflow;
};

struct collect_hook {
    struct collect_hook *next;
    sl_metrics_collect_cb cb;
    void *opaque;
};

struct sl_metrics {
    pthread_mutex_t lock; /* guards the family list, hooks, notes and rendering */
    sl_metric_t *families, **tail;
    struct collect_hook *hooks;
    struct {
        char key[32];
        char text[SL_METRICS_NOTE_MAX];
    } notes[SL_METRICS_MAX_NOTES];
};

sl_metrics_t *sl_metrics_new(void)
{
    sl_metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->tail = &m->families;
    return m;
}

static void series_free(struct sl_series *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < SL_METRICS_MAX_LABELS; i++)
        free(s->values[i]);
    free(s);
}

void sl_metrics_destroy(sl_metrics_t *m)
{
    if (!m)
        return;
    sl_metric_t *f = m->families;
    while (f) {
        sl_metric_t *next = f->next;
        struct sl_series *s = f->series;
        while (s) {
            struct sl_series *sn = s->next;
            series_free(s);
            s = sn;
        }
        series_free(f->overflow);
        pthread_mutex_destroy(&f->lock);
        free(f);
        f = next;
    }
    struct collect_hook *h = m->hooks;
    while (h) {
        struct collect_hook *next = h->next;
        free(h);
        h = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool valid_name(const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':' ||
                  (p != name && *p >= '0' && *p <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static sl_metric_t *family_new(sl_metrics_t *m, enum metric_type type, const char *name,
                               const char *help, const char *const *labels, const double *bounds,
                               size_t n_bounds)
{
    if (!valid_name(name) || n_bounds > SL_METRICS_MAX_BUCKETS)
        return NULL;
    sl_metric_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->type = type;
    f->name = name;
    f->help = help;
    for (; labels && labels[f->n_labels]; f->n_labels++) {
        if (f->n_labels == SL_METRICS_MAX_LABELS || !valid_name(labels[f->n_labels])) {
            free(f);
            return NULL;
        }
        f->labels[f->n_labels] = labels[f->n_labels];
    }
    for (size_t i = 0; i < n_bounds; i++)
        f->bounds[i] = bounds[i];
    f->n_bounds = n_bounds;
    pthread_mutex_init(&f->lock, NULL);
    pthread_mutex_lock(&m->lock);
    *m->tail = f;
    m->tail = &f->next;
    pthread_mutex_unlock(&m->lock);
    return f;
}

sl_metric_t *sl_metrics_counter(sl_metrics_t *m, const char *name, const char *help,
                                const char *const *labels)
{
    return family_new(m, METRIC_COUNTER, name, help, labels, NULL, 0);
}

sl_metric_t *sl_metrics_gauge(sl_metrics_t *m, const char *name, const char *help,
                              const char *const *labels)
{
    return family_new(m, METRIC_GAUGE, name, help, labels, NULL, 0);
}

sl_metric_t *sl_metrics_histogram(sl_metrics_t *m, const char *name, const char *help,
                                  const char *const *labels, const double *bounds, size_t n_bounds)
{
    return family_new(m, METRIC_HISTOGRAM, name, help, labels, bounds, n_bounds);
}

static bool series_matches(const struct sl_series *s, size_t n, const char *const *values)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], values[i]) != 0)
            return false;
    return true;
}

static struct sl_series *series_new(sl_metric_t *f, const char *const *values)
{
    struct sl_series *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->family = f;
    for (size_t i = 0; i < f->n_labels; i++) {
        s->values[i] = strdup(values ? values[i] : "_overflow");
        if (!s->values[i]) {
            series_free(s);
            return NULL;
        }
    }
    return s;
}

sl_series_t *sl_metric_series(sl_metric_t *f, const char *const *values)
{
    /* Readers walk the list without the lock: series are only ever prepended, and a series
     * is fully built before it is published with a release store. */
    for (struct sl_series *s = atomic_load_explicit(&f->series, memory_order_acquire); s;
         s = s->next)
        if (series_matches(s, f->n_labels, values))
            return s;

    pthread_mutex_lock(&f->lock);
    struct sl_series *found = NULL;
    for (struct sl_series *s = f->series; s && !found; s = s->next)
        if (series_matches(s, f->n_labels, values))
            found = s;
    if (!found && f->n_series < SL_METRICS_MAX_SERIES) {
        found = series_new(f, values);
        if (found) {
            found->next = f->series;
            atomic_store_explicit(&f->series, found, memory_order_release);
            f->n_series++;
        }
    }
    if (!found) {
        if (!f->overflow)
            f->overflow = series_new(f, NULL);
        found = f->overflow;
    }
    pthread_mutex_unlock(&f->lock);
    /* Only when even the overflow series could not be allocated is this NULL; the update
     * functions accept NULL so a metric never takes the process down. */
    return found;
}

void sl_series_add(sl_series_t *s, double v)
{
    if (s)
        ad_add(&s->value, v);
}

void sl_series_set(sl_series_t *s, double v)
{
    if (s)
        ad_store(&s->value, v);
}

void sl_series_observe(sl_series_t *s, double v)
{
    if (!s)
        return;
    const sl_metric_t *f = s->family;
    size_t i = 0;
    while (i < f->n_bounds && v > f->bounds[i])
        i++;
    if (i < f->n_bounds)
        atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    ad_add(&s->value, v);
}

double sl_series_value(const sl_series_t *s)
{
    if (!s)
        return 0;
    if (s->family->type == METRIC_HISTOGRAM)
        return (double)atomic_load_explicit(&s->count, memory_order_relaxed);
    return ad_load(&s->value);
}

int sl_metrics_on_collect(sl_metrics_t *m, sl_metrics_collect_cb cb, void *opaque)
{
    struct collect_hook *h = calloc(1, sizeof(*h));
    if (!h)
        return -1;
    h->cb = cb;
    h->opaque = opaque;
    pthread_mutex_lock(&m->lock);
    h->next = m->hooks;
    m->hooks = h;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* ---- rendering ---- */

struct out {
    char *p;
    size_t len, cap;
    bool failed;
};

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(struct out *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2;
        while (cap - o->len <= (size_t)n)
            cap *= 2;
        char *p = cap <= SL_METRICS_MAX_RENDER ? realloc(o->p, cap) : NULL;
        if (!p) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
}

/* The shortest of %.15g / %.17g that reads back as the same double: 0.1 stays "0.1". */
static void format_number(char *buf, size_t size, double v)
{
    if (isnan(v))
        snprintf(buf, size, "NaN");
    else if (isinf(v))
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, size, "%.0f", v);
    else {
        snprintf(buf, size, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, size, "%.17g", v);
    }
}

static void out_number(struct out *o, double v)
{
    char buf[40];
    format_number(buf, sizeof(buf), v);
    out_printf(o, "%s", buf);
}

/* Label values escape backslash, double quote and newline; HELP escapes backslash and newline. */
static void out_escaped(struct out *o, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            out_printf(o, "\\\\");
        else if (*s == '\n')
            out_printf(o, "\\n");
        else if (*s == '"' && quote)
            out_printf(o, "\\\"");
        else
            out_printf(o, "%c", *s);
    }
}

/* Writes {a="x",b="y"[,le="..."]} ; nothing when there are no labels and no `le`. */
static void out_labels(struct out *o, const sl_metric_t *f, const struct sl_series *s,
                       const char *le)
{
    if (!f->n_labels && !le)
        return;
    out_printf(o, "{");
    for (size_t i = 0; i < f->n_labels; i++) {
        out_printf(o, "%s%s=\"", i ? "," : "", f->labels[i]);
        out_escaped(o, s->values[i], true);
        out_printf(o, "\"");
    }
    if (le)
        out_printf(o, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    out_printf(o, "}");
}

static void render_series(struct out *o, const sl_metric_t *f, const struct sl_series *s)
{
    if (f->type != METRIC_HISTOGRAM) {
        out_printf(o, "%s", f->name);
        out_labels(o, f, s, NULL);
        out_printf(o, " ");
        out_number(o, ad_load(&s->value));
        out_printf(o, "\n");
        return;
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i < f->n_bounds; i++) {
        char le[40];
        cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        format_number(le, sizeof(le), f->bounds[i]);
        out_printf(o, "%s_bucket", f->name);
        out_labels(o, f, s, le);
        out_printf(o, " %llu\n", (unsigned long long)cumulative);
    }
    /* +Inf equals the count, read once, so the exposition is self-consistent even while
     * observations race with the render. */
    uint64_t count = atomic_load_explicit(&s->count, memory_order_relaxed);
    if (count < cumulative)
        count = cumulative;
    out_printf(o, "%s_bucket", f->name);
    out_labels(o, f, s, "+Inf");
    out_printf(o, " %llu\n%s_sum", (unsigned long long)count, f->name);
    out_labels(o, f, s, NULL);
    out_printf(o, " ");
    out_number(o, ad_load(&s->value));
    out_printf(o, "\n%s_count", f->name);
    out_labels(o, f, s, NULL);
    out_printf(o, " %llu\n", (unsigned long long)count);
}

char *sl_metrics_render(sl_metrics_t *m, size_t *len)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    struct out o = {.cap = 4096};
    o.p = malloc(o.cap);
    if (!o.p)
        return NULL;
    o.p[0] = '\0';

    pthread_mutex_lock(&m->lock);
    for (struct collect_hook *h = m->hooks; h; h = h->next)
        h->cb(h->opaque);
    for (sl_metric_t *f = m->families; f; f = f->next) {
        out_printf(&o, "# HELP %s ", f->name);
        out_escaped(&o, f->help ? f->help : "", false);
        out_printf(&o, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        /* Series are prepended; render oldest first for a stable, readable order. */
        pthread_mutex_lock(&f->lock);
        struct sl_series *rev[SL_METRICS_MAX_SERIES];
        size_t n = 0;
        for (struct sl_series *s = f->series; s && n < SL_METRICS_MAX_SERIES; s = s->next)
            rev[n++] = s;
        while (n > 0)
            render_series(&o, f, rev[--n]);
        if (f->overflow)
            render_series(&o, f, f->overflow);
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&m->lock);

    if (o.failed) {
        free(o.p);
        return NULL;
    }
    if (len)
        *len = o.len;
    return o.p;
}

void sl_metrics_note_set(sl_metrics_t *m, const char *key, const char *text)
{
    pthread_mutex_lock(&m->lock);
    size_t i = 0, free_slot = SL_METRICS_MAX_NOTES;
    for (; i < SL_METRICS_MAX_NOTES && strcmp(m->notes[i].key, key) != 0; i++)
        if (!m->notes[i].key[0] && free_slot == SL_METRICS_MAX_NOTES)
            free_slot = i;
    if (i == SL_METRICS_MAX_NOTES)
        i = free_slot;
    if (i < SL_METRICS_MAX_NOTES) {
        snprintf(m->notes[i].key, sizeof(m->notes[i].key), "%s", text ? key : "");
        snprintf(m->notes[i].text, sizeof(m->notes[i].text), "%s", text ? text : "");
    }
    pthread_mutex_unlock(&m->lock);
}

void sl_metrics_notes(sl_metrics_t *m, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < SL_METRICS_MAX_NOTES && len + 1 < size; i++)
        if (m->notes[i].key[0]) {
            int n = snprintf(buf + len, size - len, "%s%s", len ? "; " : "", m->notes[i].text);
            len = n < 0 || (size_t)n >= size - len ? size - 1 : len + (size_t)n;
        }
    pthread_mutex_unlock(&m->lock);
}
