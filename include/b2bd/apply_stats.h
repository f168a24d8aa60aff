/* apply_stats: what applying batches did, counted (apply.c fills them, metrics.c reports them). */
#ifndef B2BD_APPLY_STATS_H
#define B2BD_APPLY_STATS_H

#include "b2bd/decode.h"
#include "b2bd/err.h"

struct apply_stats {
    unsigned long applied;      /* commands applied now */
    unsigned long rejected;     /* commands that got a `rejected` result */
    unsigned long duplicates;   /* repeats of applied commands (stored result sent again) */
    unsigned long dead_letters; /* messages sent to the dead-letter topic */
    unsigned long skipped;      /* messages already applied before (redelivered) */
    unsigned long bulk_commands;  /* of those applied, rejected or duplicate: settled set-based */
    unsigned long bulk_fallbacks; /* runs handed back to the one-by-one path */
    unsigned long isolated;     /* messages the database refused, rejected alone (the rest applied) */
    unsigned long lost;         /* commands the broker deleted before they were applied */
    unsigned long dry_runs;     /* dry runs judged (result sent, nothing applied); not in the above */
    unsigned long bulk_dry_runs;  /* of those, settled set-based */
    /* the same, by command type (CMD_UNKNOWN: type unknown or unreadable) */
    unsigned long applied_by_type[CMD_UNKNOWN + 1];
    unsigned long rejected_by_type[CMD_UNKNOWN + 1];
    /* rejections by error code, dead letters by their code */
    unsigned long by_code[B2BD_ERR_INTERNAL + 1];
};

#endif
