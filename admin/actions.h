/*
 * actions: the record of what operators did through sluice-admin. Every action (replay, bulk
 * replay, discard, pause, resume; dry runs and refusals too) becomes a row of admin_actions
 * (schemas/sql/0005_admin_actions.sql) and an audit record on <prefix>audit, stage "admin",
 * outcome the action, with the event id when it touched one, so the event's timeline shows it
 * and sluice-audit keeps it with the rest of the trail.
 */
#ifndef ADM_ACTIONS_H
#define ADM_ACTIONS_H

#include <jansson.h>

#include "auth.h"
#include "sl_err.h"
#include "sl_kafka.h"
#include "sl_pg.h"

typedef struct adm_actions adm_actions_t;

struct adm_action {
    const struct adm_identity *who;
    const char *action;       /* replay, bulk_replay, discard, pause, resume */
    const char *target;       /* a dead letter's id, a destination's name, "filter" */
    const char *event_id;     /* the event it touched, or NULL */
    const json_t *parameters; /* the request's body; NULL: {} */
    const char *remote;
    unsigned int status;  /* the HTTP status answered */
    const json_t *result; /* the answer */
};

/* `kafka` is borrowed and must outlive the recorder; the producer is made on first use. */
adm_actions_t *adm_actions_new(const struct sl_kafka_settings *kafka);
void adm_actions_destroy(adm_actions_t *a);

/* Records `act` in `pg`'s admin_actions and in the audit trail. Thread-safe. 0, or -1 with
 * *err naming what could not be recorded (the row is written first). */
int adm_actions_record(adm_actions_t *a, sl_pg_t *pg, const struct adm_action *act,
                       struct sl_err *err) __attribute__((warn_unused_result));

/* One page of the record, newest first: {"items": [{"id", "at", "who", "role", "action",
 * "target", "parameters", "remote", "result"}], "next_cursor"}; `cursor` is the previous page's
 * next_cursor (an id) or NULL. */
int adm_actions_list(sl_pg_t *pg, long long cursor, int limit, json_t **page, struct sl_err *err)
    __attribute__((warn_unused_result));

#endif
