/* util: small helpers shared by modules: ids, clocks, a string builder. */
#ifndef B2BD_UTIL_H
#define B2BD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A random (version 4) UUID as 36 lower-case characters + NUL. */
void util_uuid_v4(char out[37]);

/* Now, as RFC 3339 UTC with milliseconds: "2026-11-22T10:00:00.012Z". */
void util_now_rfc3339(char out[32]);

/* Monotonic clock in milliseconds. */
int64_t util_now_ms(void);

/* A growable string. Zero-initialise; free with sbuf_free(). Allocation failure aborts. */
struct sbuf {
    char *s;
    size_t len;
    size_t cap;
};
void sbuf_add(struct sbuf *b, const char *s, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_free(struct sbuf *b);
/* The text (never NULL, "" when empty). */
const char *sbuf_str(struct sbuf *b);

/* Builds a PostgreSQL array literal ({"a","b"}) of n strings, for a text[] parameter. */
void util_pg_text_array(struct sbuf *b, const char *const *v, size_t n);

/* The length in bytes of the longest prefix of s of at most max bytes that ends at a
 * character boundary (UTF-8), for quoting a cut value with "%.*s". */
int util_utf8_prefix(const char *s, int max);

/* Sleeps ms milliseconds (interrupted early by a signal). */
void util_sleep_ms(long ms);

#endif
