/* trace: W3C Trace Context carried from a command to every message it causes
 * (CONTRACT "Trace context and dry runs"). A command's traceparent and tracestate
 * Kafka headers are read as they came (trace_in); b2bd continues the trace with a parent
 * id of its own (trace_out), whose headers go with each outbox row the command writes. */
#ifndef B2BD_TRACE_H
#define B2BD_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <librdkafka/rdkafka.h>

/* A command's trace headers as they came (borrowed from the Kafka message). */
struct trace_in {
    const char *parent;  /* traceparent, NULL if absent */
    size_t parent_len;
    const char *state;   /* tracestate, NULL if absent */
    size_t state_len;
    bool repeated;       /* traceparent given more than once: invalid; tracestate more than
                            once: it is ignored */
};

/* The trace headers of a Kafka message (none: all zero). */
void trace_in_from_kafka(const rd_kafka_message_t *m, struct trace_in *in);

/* True when two commands came with the same trace headers, byte for byte. */
bool trace_in_equal(const struct trace_in *a, const struct trace_in *b);

/* A traceparent, read as W3C Trace Context says: version 00 is exactly
 * "00-<32 hex>-<16 hex>-<2 hex>"; a later version (not ff) is read by those first four
 * fields and may go on after a '-'; hex digits in lower case, neither id all zeros.
 * Returns true and sets trace_id and flags (when not NULL) if valid. */
bool trace_parse(const char *tp, size_t len, char trace_id[33], char flags[3]);

/* How b2bd continues a command's trace: its messages carry traceparent (version 00, the
 * command's trace id and flags, a parent id of b2bd's own) and the tracestate as it
 * came. trace_id is "" when the command had no valid traceparent (then no headers). */
struct trace_out {
    char trace_id[33];
    char traceparent[56];
    char *headers; /* the outbox's JSON array [["traceparent", ...], ["tracestate", ...]]
                      (owned), NULL without a trace */
};

/* Starts b2bd's part of in's trace (a new random parent id); with no valid traceparent
 * out has no trace. Free with trace_out_free. */
void trace_begin(const struct trace_in *in, struct trace_out *out);
void trace_out_free(struct trace_out *out);

/* A new trace for a client's run (b2bctl send, import): "00-<new trace id>-<new parent
 * id>-01" (sampled). */
void trace_new(char traceparent[56]);

#endif
