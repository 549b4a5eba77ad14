#include "sl_id.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void sl_uuid_v7(char out[SL_UUID_STR_LEN + 1])
{
    uint8_t b[16];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;

    /* getrandom never fails for 10 bytes once the pool is initialised; if it somehow does,
     * fall back to the clock's nanoseconds so the id stays unique in practice. */
    if (getrandom(b + 6, 10, 0) != 10) {
        uint64_t ns = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
        memcpy(b + 6, &ns, 8);
    }
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f)); /* version 7 */
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f)); /* variant 10 */

    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}
