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

/* b2bctl topics ...: argv[0] is "topics". Exit code. */
int ctl_topics_main(const struct b2bd_config *cfg, int argc, char **argv);

#endif
