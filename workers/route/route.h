/*
 * route: sluice-route, the stage that sends normalized events to destinations.
 *
 * Route rules (the pipeline's `routes`, in file order): each rule's `when` (jq, default true)
 * selects events; `to` names one or more destinations (fan-out). An event may match several
 * rules; each destination receives it at most once, attributed to the first rule that named it.
 * Each destination has its own topic `<prefix>deliver.<destination>`, keyed by the event's
 * partition key, or by the rule's `partition_key` (jq) for destinations that need another
 * ordering. An event that matches no rule is recorded as filtered (a terminal state in the
 * audit trail), never silently dropped. A rule whose expression fails at run time, or runs out
 * of its budget, dead-letters the event with the rule's name and the reason.
 */
#ifndef ROUTE_H
#define ROUTE_H

#include "sl_stage.h"

extern const struct sl_stage route_stage;

/* The checks `sluicectl config check` adds for routes: every expression compiles. */
int route_check_config(const sl_conf_t *conf, struct sl_err *err);

#endif
