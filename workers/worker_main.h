/*
 * worker_main: the whole binary of a transactional stage, so each worker's main() is one line.
 *
 * Parses --config FILE (or SLUICE_CONFIG), --admin-listen ADDR (default 127.0.0.1:<the
 * stage's admin port>), --instance ID (or SLUICE_INSTANCE_ID: a stable replica name, such as a
 * StatefulSet pod name; it names the transactional.id and turns on static group membership),
 * --group ID (consumer group override), --help and --version. Loads and checks the pipeline
 * file (a bad file stops the binary with one line naming file, line and key), starts logging,
 * metrics and the admin listener, runs the stage on the shared loop until SIGTERM, and returns
 * the exit code: 0 on a clean shutdown, 1 on a fatal error, 2 on a usage or config error.
 */
#ifndef WORKER_MAIN_H
#define WORKER_MAIN_H

#include "sl_stage.h"

int worker_main(int argc, char **argv, const struct sl_stage *stage);

#endif
