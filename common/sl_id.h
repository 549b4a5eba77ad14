/*
 * sl_id: event ids. UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits,
 * so ids sort by creation time across processes and hosts. Thread-safe.
 */
#ifndef SL_ID_H
#define SL_ID_H

#define SL_UUID_STR_LEN 36

/* Writes the canonical lowercase form and a NUL into out[SL_UUID_STR_LEN + 1]. */
void sl_uuid_v7(char out[SL_UUID_STR_LEN + 1]);

#endif
