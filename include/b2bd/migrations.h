/* migrations: the schema b2bd carries, embedded from sql/ at build time
 * (cmake/embed_sql.cmake): the migrations (history, each applied once), the function
 * files (the live function bodies, applied whenever their text changed) and the schema
 * version (sql/VERSION). */
#ifndef B2BD_MIGRATIONS_H
#define B2BD_MIGRATIONS_H

struct b2bd_migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct b2bd_migration b2bd_migrations[];
extern const int b2bd_migrations_count;

/* One file of sql/functions: its name ("assign.sql") and text. */
struct b2bd_sqlfile {
    const char *name;
    const char *sql;
};

/* In the order of sql/functions/ORDER. */
extern const struct b2bd_sqlfile b2bd_functions[];
extern const int b2bd_functions_count;

/* The schema version of this build (sql/VERSION), recorded in the database by the newest
 * b2bd that brought its schema up to date; an older b2bd refuses to start on it. */
extern const int b2bd_schema_version;

#endif
