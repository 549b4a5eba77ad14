/* What the two CloudEvents-over-HTTP harnesses share: an accepted event must survive the trip
 * through Kafka record headers (sl_ce_to_headers, then sl_ce_from_headers) unchanged. */
#ifndef SLUICE_FUZZ_CEHTTP_H
#define SLUICE_FUZZ_CEHTTP_H

#include "sl_cloudevent.h"

/* Aborts when `ce` does not come back from Kafka headers as it went in. */
void fuzz_ce_roundtrip(const struct sl_ce *ce);

#endif
