/* schema: brings a database's schema to this build's at start: the pending migrations
 * (sql/migrations, history), then the function files whose text changed (sql/functions,
 * the live bodies), under the migration lock; and refuses a database that a newer b2bd
 * has brought further (its schema version, sql/VERSION, is recorded in the database). */
#ifndef B2BD_SCHEMA_H
#define B2BD_SCHEMA_H

#include "b2bd/db.h"
#include "b2bd/err.h"
#include "b2bd/migrations.h"

/* schema_update's and schema_apply_functions' returns besides 0 and -1. */
#define SCHEMA_NEWER 1

/* Returns SCHEMA_NEWER, err naming both versions, when the database's schema is newer than
 * this build's (its recorded schema version is higher, or it holds a migration this build
 * does not know), touching nothing; else applies the pending migrations (db_migrate),
 * then schema_apply_functions with this build's files and version. Returns 0, or -1 with
 * err when the database failed (worth retrying). */
int schema_update(struct b2bd_db *db, struct b2bd_err *err);

/* In one transaction, holding the migration lock: returns SCHEMA_NEWER (nothing applied)
 * when the database's recorded schema version is above version or it holds a migration
 * above newest_migration; else runs each of the n files, in order, whose SHA-256 differs
 * from the one recorded for its name in schema_functions, records it, and records
 * version as the database's schema version (it only goes up). *applied: the number of
 * files run. Returns 0, or -1 with err (nothing applied). */
int schema_apply_functions(struct b2bd_db *db, int version, int newest_migration,
                           const struct b2bd_sqlfile *files, int n, int *applied,
                           struct b2bd_err *err);

#endif
