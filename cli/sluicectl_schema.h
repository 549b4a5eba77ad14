/*
 * sluicectl_schema: `sluicectl schema check`, validating JSON files against a JSON Schema.
 *
 *   sluicectl schema check [--map URI-PREFIX=DIR]... [--assert-formats] [--max-errors N]
 *                          SCHEMA INSTANCE...
 *
 * Each validation error goes to stdout as "INSTANCE_FILE: /instance/path: /keyword/location:
 * message" ("(root)" stands for the empty JSON Pointer); problems with the schema or a file go
 * to stderr. Exit codes: 0 every instance valid, 1 some instance invalid, 2 bad schema,
 * unreadable or malformed file, or a usage error (the highest applicable wins).
 */
#ifndef SLUICECTL_SCHEMA_H
#define SLUICECTL_SCHEMA_H

/* argv[0] is the subcommand's own name ("check"); options and operands follow. argv is not
 * modified. Returns the exit code. */
int sluicectl_schema_check(int argc, char **argv);

#endif
