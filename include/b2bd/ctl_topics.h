/* ctl_topics: b2bctl topics apply: the contract's topics from topics/manifest.json, through the Kafka admin API. */
#ifndef B2BD_CTL_TOPICS_H
#define B2BD_CTL_TOPICS_H

#include <jansson.h>

#include "b2bd/config.h"

/* One topic to create, from a manifest entry, for a cluster of n_brokers: the
 * replication factor and min.insync.replicas capped at n_brokers (and min.insync at the
 * replication factor). Returns {"name", "partitions", "replication_factor", "config"}
 * (caller decrefs) or NULL when the entry lacks a suffix or a partition count. */
json_t *ctl_topics_plan(const json_t *manifest, const json_t *entry, const char *prefix, int n_brokers);

/* Where topics apply looks for the manifest without --manifest: the current directory's
 * topics/manifest.json (a source tree), the installed one (B2BD_DATA_DIR is the configured
 * CMAKE_INSTALL_FULL_DATADIR/b2bd), then the one of the source tree b2bctl was built from. */
#define CTL_TOPICS_INSTALLED_MANIFEST B2BD_DATA_DIR "/topics/manifest.json"
#define CTL_TOPICS_SOURCE_MANIFEST B2BD_SOURCE_DIR "/topics/manifest.json"

/* b2bctl topics apply --help, less the usage and options. */
#define CTL_TOPICS_APPLY_HELP                                                                     \
    "Creates the topics of the manifest that do not exist yet, named with the topic\n"            \
    "prefix, with their partitions, replication factor (capped at the number of brokers;\n"       \
    "min.insync.replicas capped at it too) and configs, through the Kafka admin API.\n"           \
    "Existing topics are reported (exists; a partition count that differs from the\n"            \
    "manifest's is noted) and left as they are: their configs are not compared.\n"                \
    "Without --manifest: topics/manifest.json of the current directory, else\n"                   \
    CTL_TOPICS_INSTALLED_MANIFEST ", else\n" CTL_TOPICS_SOURCE_MANIFEST ".\n"                     \
    "Exit 0 when every topic exists afterwards, 1 if any could not be created.\n"

/* The manifest topics apply reads: given (--manifest), or the first readable one of the
 * above (the installed one when there is none). */
const char *ctl_topics_manifest(const char *given);

struct ctl_args;
/* b2bctl topics apply. Exit code. */
int ctl_topics_apply_run(const struct b2bd_config *cfg, const struct ctl_args *a);

#endif
