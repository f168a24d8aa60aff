/* libFuzzer target: the MIME header builder (smtp_header_value, smtp_format_headers),
 * offline: nothing is sent.
 *
 * Input: the fields of one email separated by NUL bytes, in this order: subject, from,
 * to, to_name, message_id (missing ones are NULL). Hostile values: CR/LF, control
 * characters, invalid UTF-8, "=?", quotes, angle brackets, long strings.
 *
 * Checks beyond the sanitizers (smtp.h's promises, and "no header injection"):
 *  - smtp_header_value: printable ASCII only but the CRLF SP folding; encoded words of at
 *    most 75 characters; snprintf-like truncation.
 *  - smtp_format_headers: either 0 (an invalid address) or exactly the six header lines
 *    From, To, Subject, Date, (Message-ID), MIME-Version, each once, in order, with
 *    only CRLF SP continuations between them; no CR or LF anywhere else; no control
 *    character; 8-bit bytes only inside the From and To addresses; the To address is the
 *    one given, verbatim; lines stay under RFC 5322's 998 characters. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/smtp.h"

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz_smtp_headers: broken promise at line %d: %s\n", __LINE__, \
                    #cond);                                                                  \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#define NFIELDS 5

static void check_value(const char *raw)
{
    size_t n = smtp_header_value(raw, NULL, 0);
    char *full = malloc(n + 1);
    CHECK(full != NULL);
    CHECK(smtp_header_value(raw, full, n + 1) == n && strlen(full) == n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)full[i];
        if (c == '\r') {
            CHECK(i + 2 < n && full[i + 1] == '\n' && full[i + 2] == ' ');
            CHECK(i >= 2 && full[i - 1] == '=' && full[i - 2] == '?'); /* between words */
            i += 2;
            continue;
        }
        CHECK(c >= 0x20 && c <= 0x7E);
    }
    if (memchr(full, '\r', n) || strncmp(full, "=?UTF-8?B?", 10) == 0) {
        /* encoded words: each at most 75 characters */
        for (const char *w = full; w && *w;) {
            const char *end = strstr(w, "\r\n ");
            size_t wl = end ? (size_t)(end - w) : strlen(w);
            CHECK(wl <= 75 && strncmp(w, "=?UTF-8?B?", 10) == 0 && wl >= 12
                  && strncmp(w + wl - 2, "?=", 2) == 0);
            w = end ? end + 3 : NULL;
        }
    } else {
        CHECK(n <= 900);
    }
    /* Truncation: a prefix of the full value, NUL-terminated, same return value. */
    char small[17];
    CHECK(smtp_header_value(raw, small, sizeof small) == n);
    CHECK(strlen(small) == (n < sizeof small ? n : sizeof small - 1));
    CHECK(strncmp(small, full, strlen(small)) == 0);
    free(full);
}

static const char *NAMES[] = {"From: ", "To: ", "Subject: ", "Date: ", "Message-ID: ",
                              "MIME-Version: "};

static void check_headers(const struct smtp_message *m)
{
    size_t n = smtp_format_headers(m, NULL, 0);
    char *h = malloc(n + 1);
    CHECK(h != NULL);
    size_t n2 = smtp_format_headers(m, h, n + 1);
    if (n == 0) {
        CHECK(n2 == 0 && h[0] == '\0');
        free(h);
        return;
    }
    /* Date may change between the two calls (a second boundary): compare lengths only. */
    CHECK(n2 == n && strlen(h) == n);
    CHECK(n >= 2 && h[n - 2] == '\r' && h[n - 1] == '\n');
    int next = 0;        /* index in NAMES of the next header expected */
    int seen[6] = {0};
    int current = -1;    /* the header whose lines we are in */
    const char *line = h;
    while (*line) {
        const char *eol = strstr(line, "\r\n");
        CHECK(eol != NULL);
        size_t ll = (size_t)(eol - line);
        CHECK(ll <= 998);
        if (line[0] == ' ' || line[0] == '\t') {
            CHECK(current >= 0); /* a continuation of the header above */
        } else {
            int k;
            for (k = next; k < 6; k++)
                if (strncmp(line, NAMES[k], strlen(NAMES[k])) == 0)
                    break;
            CHECK(k < 6); /* a header line we did not write: injection */
            CHECK(k != 4 || next <= 4);
            seen[k]++;
            current = k;
            next = k + 1;
        }
        for (size_t i = 0; i < ll; i++) {
            unsigned char c = (unsigned char)line[i];
            CHECK(c != '\r' && c != '\n'); /* no bare CR or LF */
            CHECK(c >= 0x20 && c != 0x7F);
            if (c >= 0x80)
                CHECK(current == 0 || current == 1); /* raw UTF-8: addresses only */
        }
        line = eol + 2;
    }
    CHECK(seen[0] == 1 && seen[1] == 1 && seen[2] == 1 && seen[3] == 1 && seen[5] == 1);
    CHECK(seen[4] <= 1);

    /* The To line ends with the address as given (bare, or inside <>). */
    const char *to = strstr(h, "\r\nTo: ");
    CHECK(to != NULL);
    to += 6;
    const char *to_end = strstr(to, "\r\n");
    while (to_end && (to_end[2] == ' ' || to_end[2] == '\t'))
        to_end = strstr(to_end + 2, "\r\n"); /* skip the folding of an encoded name */
    CHECK(to_end != NULL);
    size_t tl = strlen(m->to);
    size_t have = (size_t)(to_end - to);
    if (have >= tl + 2 && to[have - 1] == '>')
        CHECK(memcmp(to + have - 1 - tl, m->to, tl) == 0 && to[have - 2 - tl] == '<');
    else
        CHECK(have == tl && memcmp(to, m->to, tl) == 0);

    /* snprintf-like truncation. */
    char small[33];
    CHECK(smtp_format_headers(m, small, sizeof small) >= sizeof small - 1);
    CHECK(strlen(small) == sizeof small - 1);
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Split into NUL-terminated copies (each its own allocation: reads past a field's
     * end are caught). */
    char *f[NFIELDS] = {0};
    size_t start = 0;
    int nf = 0;
    for (size_t i = 0; i <= size && nf < NFIELDS; i++) {
        if (i == size || data[i] == '\0') {
            f[nf] = malloc(i - start + 1);
            if (!f[nf])
                abort();
            memcpy(f[nf], data + start, i - start);
            f[nf][i - start] = '\0';
            nf++;
            start = i + 1;
        }
    }
    check_value(f[0]);
    if (f[0])
        check_value(f[0] + strlen(f[0]) / 2);
    struct smtp_message m = {
        .subject = f[0], .from = f[1], .to = f[2], .to_name = f[3], .message_id = f[4],
        .text = "text", .html = "<p>html</p>",
    };
    if (m.from && m.to)
        check_headers(&m);
    /* Also with the daemon's usual sender and Message-ID around the hostile fields. */
    struct smtp_message m2 = m;
    m2.from = "\"Shop\" <shop@example.com>";
    m2.message_id = "<5b0c8e7e-3c9c-4f4a-9f0e-2f6d1f0f1a11@b2bd>";
    if (m2.to)
        check_headers(&m2);
    for (int i = 0; i < NFIELDS; i++)
        free(f[i]);
    return 0;
}
