/* ctl_csv: a small RFC 4180 CSV reader and writer for b2bctl import (UTF-8, CRLF or LF). */
#ifndef B2BD_CTL_CSV_H
#define B2BD_CTL_CSV_H

#include <stdbool.h>
#include <stddef.h>

#include "b2bd/util.h"

/* A reader over a buffer held by the caller. Zero-initialise with ctl_csv_init(). */
struct ctl_csv {
    const char *p, *end;
    long line;            /* the physical line the reader is at (1-based) */
};

/* One record: its fields (owned, NUL-terminated; a field may hold a NUL byte, which
 * ctl_csv_next() reports as an error) and the line it starts on. */
struct ctl_csv_record {
    char **fields;
    size_t n, cap;
    long line;
};

/* Starts reading data[0..len); a UTF-8 byte order mark is skipped. */
void ctl_csv_init(struct ctl_csv *r, const char *data, size_t len);

/* Reads the next record into rec (its previous fields are freed). Blank lines are
 * skipped. Returns 1 with a record, 0 at the end, or -1 for a malformed record
 * (a quote inside an unquoted field, text after a closing quote, a quote left open
 * at the end, a NUL byte), with why set and rec->line its first line; the reader
 * then continues after that record's line, so the next call reads the next one. */
int ctl_csv_next(struct ctl_csv *r, struct ctl_csv_record *rec, char *why, size_t why_len);

void ctl_csv_record_free(struct ctl_csv_record *rec);

/* Appends s to b as one CSV field, quoted when it holds a comma, quote, CR or LF,
 * or starts or ends with a space. */
void ctl_csv_quote(struct sbuf *b, const char *s);

/* True when s[0..len) is valid UTF-8 (no overlong forms, no surrogates). */
bool ctl_utf8_valid(const char *s, size_t len);

#endif
