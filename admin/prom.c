#include "prom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct label {
    char *name, *value;
};

struct sample {
    char *name;
    struct label labels[ADM_PROM_LABELS_MAX];
    size_t n_labels;
    double value;
};

struct adm_prom {
    char *text; /* a copy, cut up in place: every string above points into it */
    struct sample *s;
    size_t n;
};

/* Reads `"value"` at *p (after the quote) unescaping in place; the end past the quote. */
static char *read_value(char *p)
{
    char *o = p;
    for (; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            *o++ = *p == 'n' ? '\n' : *p;
        } else {
            *o++ = *p;
        }
    }
    if (*p != '"')
        return NULL;
    *o = '\0';
    return p + 1;
}

/* One line into s; false when it is not a sample. */
static bool parse_line(char *line, struct sample *s)
{
    char *p = line;
    if (!*p || *p == '#')
        return false;
    s->name = p;
    p += strcspn(p, "{ ");
    s->n_labels = 0;
    if (*p == '{') {
        *p++ = '\0';
        while (*p && *p != '}') {
            char *name = p, *eq = strchr(p, '=');
            if (!eq || eq[1] != '"')
                return false;
            *eq = '\0';
            char *value = eq + 2;
            if (!(p = read_value(value)))
                return false;
            if (s->n_labels < ADM_PROM_LABELS_MAX)
                s->labels[s->n_labels++] = (struct label){name, value};
            if (*p == ',')
                p++;
        }
        if (*p != '}')
            return false;
        p++;
    }
    if (*p != ' ')
        return false;
    *p++ = '\0';
    char *end;
    s->value = strtod(p, &end);
    return end != p;
}

adm_prom_t *adm_prom_parse(const char *text)
{
    adm_prom_t *p = calloc(1, sizeof(*p));
    size_t lines = 1;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    if (lines > ADM_PROM_SAMPLES_MAX)
        lines = ADM_PROM_SAMPLES_MAX;
    if (!p || !(p->text = strdup(text)) || !(p->s = calloc(lines, sizeof(*p->s)))) {
        adm_prom_destroy(p);
        return NULL;
    }
    for (char *line = p->text, *next; line && p->n < lines; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (parse_line(line, &p->s[p->n]))
            p->n++;
    }
    return p;
}

void adm_prom_destroy(adm_prom_t *p)
{
    if (!p)
        return;
    free(p->s);
    free(p->text);
    free(p);
}

static const char *label_of(const struct sample *s, const char *name)
{
    for (size_t i = 0; i < s->n_labels; i++)
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    return NULL;
}

static bool matches(const struct sample *s, const char *name, const char *const *match)
{
    if (strcmp(s->name, name) != 0)
        return false;
    for (const char *const *m = match; m && m[0] && m[1]; m += 2) {
        const char *v = label_of(s, m[0]);
        if (!v || strcmp(v, m[1]) != 0)
            return false;
    }
    return true;
}

double adm_prom_sum(const adm_prom_t *p, const char *name, const char *const *match, bool *found)
{
    double sum = 0;
    bool any = false;
    for (size_t i = 0; i < p->n; i++)
        if (matches(&p->s[i], name, match)) {
            sum += p->s[i].value;
            any = true;
        }
    if (found)
        *found = any;
    return sum;
}

void adm_prom_each(const adm_prom_t *p, const char *name, const char *const *match,
                   const char *label, void (*cb)(void *opaque, const char *v, double value),
                   void *opaque)
{
    for (size_t i = 0; i < p->n; i++) {
        const char *v = label_of(&p->s[i], label);
        if (v && matches(&p->s[i], name, match))
            cb(opaque, v, p->s[i].value);
    }
}

double adm_prom_quantile(const adm_prom_t *p, const char *name, const char *const *match, double q)
{
    char bucket[256];
    double le[64], count[64];
    size_t n = 0;
    snprintf(bucket, sizeof(bucket), "%s_bucket", name);
    for (size_t i = 0; i < p->n && n < 64; i++) {
        const char *v = label_of(&p->s[i], "le");
        if (!v || !matches(&p->s[i], bucket, match))
            continue;
        le[n] = strcmp(v, "+Inf") == 0 ? INFINITY : strtod(v, NULL);
        count[n++] = p->s[i].value;
    }
    /* Buckets come in ascending order from our own renderer; sort anyway (few). */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && le[j] < le[j - 1]; j--) {
            double t = le[j];
            le[j] = le[j - 1];
            le[j - 1] = t;
            t = count[j];
            count[j] = count[j - 1];
            count[j - 1] = t;
        }
    if (n == 0 || count[n - 1] <= 0)
        return -1;
    double rank = q * count[n - 1];
    for (size_t i = 0; i < n; i++) {
        if (count[i] < rank)
            continue;
        if (isinf(le[i])) /* in the +Inf bucket: the highest finite bound */
            return i > 0 ? le[i - 1] : -1;
        double lo = i > 0 ? le[i - 1] : 0, below = i > 0 ? count[i - 1] : 0;
        double in = count[i] - below;
        return in > 0 ? lo + (le[i] - lo) * (rank - below) / in : le[i];
    }
    return -1;
}
