/* ctl_send: b2bctl's one way to send commands and wait for their results, used by send,
 * resend and import. */
#ifndef B2BD_CTL_SEND_H
#define B2BD_CTL_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "b2bd/config.h"

struct ctl_send;

/* Called once per command waited for, with its first result (borrowed) and the tag
 * given to ctl_send_command. */
typedef void (*ctl_send_result_fn)(void *arg, size_t tag, json_t *result);

/* A producer of commands and, when on_result is given, a reader of prefix+results from
 * each partition's end as it is now (so it sees the results of what is sent next).
 * It starts a trace (W3C Trace Context, b2bd/trace.h): every command it sends carries
 * the same traceparent header, so that the run's messages can be found by one trace id.
 * Returns NULL after printing why. */
struct ctl_send *ctl_send_open(const struct b2bd_config *cfg, ctl_send_result_fn on_result,
                               void *arg);

/* Sends every command to prefix+suffix (the bulk lane's "commands.bulk"), keyed as on its
 * type's own topic; NULL: each to its type's topic (the default). */
void ctl_send_to(struct ctl_send *s, const char *suffix);

/* Produces cmd to its type's topic (or ctl_send_to's) with the contract's key; text is what is sent (NULL:
 * cmd as compact JSON). When waiting, its result is expected if it has a command_id (a
 * repeated id is waited for once). Command ids are matched as UUIDs, without regard to
 * case: b2bd reports them in canonical lower case. Also takes any results already in.
 * Returns the producer's error, RD_KAFKA_RESP_ERR_NO_ERROR once queued. */
rd_kafka_resp_err_t ctl_send_command(struct ctl_send *s, const json_t *cmd, const char *text,
                                     size_t len, size_t tag);

/* The trace id of the commands it sends (32 lower-case hex digits). */
const char *ctl_send_trace_id(const struct ctl_send *s);

/* Waits up to 30 s for what was sent to reach Kafka; returns how many did not. */
int ctl_send_flush(struct ctl_send *s);

/* Takes results until every command waited for has one, for at most timeout_s in all
 * or, with idle, until timeout_s pass without a new result; calls tick(arg) (if not
 * NULL) after each poll and stops early on ctl_interrupted. Returns how many commands
 * are still without a result. */
long ctl_send_wait(struct ctl_send *s, long timeout_s, bool idle, void (*tick)(void *arg));

/* Commands waited for that have no result yet. */
long ctl_send_missing(const struct ctl_send *s);

void ctl_send_close(struct ctl_send *s);

/* Sends one command and waits up to timeout_s for its result; returns it (caller
 * decrefs) or NULL after printing why. */
json_t *ctl_send_and_wait(const struct b2bd_config *cfg, const json_t *cmd, long timeout_s);

#endif
