#include "retry.h"

#include <curl/curl.h>
#include <string.h>

static bool listed(const int *codes, size_t n, long status)
{
    for (size_t i = 0; i < n; i++)
        if (codes[i] == status)
            return true;
    return false;
}

enum dlv_class dlv_classify(const struct dlv_status_rules *rules, long status)
{
    if (status >= 200 && status <= 299)
        return DLV_DELIVERED;
    if (rules && listed(rules->permanent, rules->n_permanent, status))
        return DLV_PERMANENT;
    if (rules && listed(rules->retriable, rules->n_retriable, status))
        return DLV_RETRY;
    if (status == 0 || status == 408 || status == 425 || status == 429 || status >= 500)
        return DLV_RETRY;
    return DLV_PERMANENT;
}

bool dlv_honours_retry_after(long status)
{
    return status == 429 || status == 503;
}

int dlv_retry_after_ms(const char *value, long long now_unix_ms, long long *delay_ms)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t len = strlen(value);
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (len == 0)
        return -1;

    bool digits = true;
    for (size_t i = 0; i < len; i++)
        digits = digits && value[i] >= '0' && value[i] <= '9';
    if (digits) {
        long long s = 0;
        for (size_t i = 0; i < len && s <= DLV_RETRY_AFTER_MAX_S; i++)
            s = s * 10 + (value[i] - '0');
        *delay_ms = (s > DLV_RETRY_AFTER_MAX_S ? DLV_RETRY_AFTER_MAX_S : s) * 1000;
        return 0;
    }

    /* An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms that RFC 9110
     * still asks recipients to accept): curl's parser reads all three. */
    char date[64];
    if (len >= sizeof(date))
        return -1;
    memcpy(date, value, len);
    date[len] = '\0';
    time_t at = curl_getdate(date, NULL);
    if (at == (time_t)-1)
        return -1;
    /* Clamped in seconds first: curl_getdate reads years far outside any sensible range
     * ("Nov498999999:T4" is a date to it), and such a time in milliseconds overflows. */
    long long now_s = now_unix_ms / 1000, s = (long long)at;
    if (s < now_s - 1)
        s = now_s - 1;
    if (s > now_s + DLV_RETRY_AFTER_MAX_S + 1)
        s = now_s + DLV_RETRY_AFTER_MAX_S + 1;
    long long ms = s * 1000 - now_unix_ms;
    if (ms < 0)
        ms = 0;
    if (ms > DLV_RETRY_AFTER_MAX_S * 1000)
        ms = DLV_RETRY_AFTER_MAX_S * 1000;
    *delay_ms = ms;
    return 0;
}

long long dlv_backoff_ms(const struct dlv_retry_policy *p, int failed, uint64_t rnd)
{
    long long cap = p->initial_ms;
    for (int i = 1; i < failed && cap < p->max_ms; i++)
        cap *= 2;
    if (cap > p->max_ms)
        cap = p->max_ms;
    if (!p->jitter)
        return cap;
    return (long long)(rnd % (uint64_t)(cap + 1));
}

enum dlv_next dlv_retry_next(const struct dlv_retry_policy *p, int attempts,
                             long long retry_after_ms, long long age_ms, uint64_t rnd,
                             long long *delay_ms)
{
    if (attempts >= p->max_attempts)
        return DLV_NEXT_GIVE_UP_ATTEMPTS;
    long long delay = retry_after_ms >= 0 ? retry_after_ms : dlv_backoff_ms(p, attempts, rnd);
    if (age_ms + delay > p->max_age_ms)
        return DLV_NEXT_GIVE_UP_AGE;
    *delay_ms = delay;
    return DLV_NEXT_RETRY;
}
