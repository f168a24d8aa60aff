/* migrations: the schema versions, embedded from sql/migrations at build time. */
#ifndef B2BD_MIGRATIONS_H
#define B2BD_MIGRATIONS_H

struct b2bd_migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct b2bd_migration b2bd_migrations[];
extern const int b2bd_migrations_count;

#endif
