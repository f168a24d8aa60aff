/* outbox_topics: the output topics' names, apart from the outbox (metrics.c names them too). */
#ifndef B2BD_OUTBOX_TOPICS_H
#define B2BD_OUTBOX_TOPICS_H

/* Output topics, by the part of their name after the prefix. */
#define OUTBOX_RESULTS "results"
#define OUTBOX_ACCESS "events.access"
#define OUTBOX_NOTIFICATIONS "events.notifications"
#define OUTBOX_DLQ "dlq"
#define OUTBOX_SHOPS "events.shops"
#define OUTBOX_PRIVACY "events.privacy"

#endif
