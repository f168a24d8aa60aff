/* smtp: builds one email (multipart/alternative, text + HTML) and sends it with libcurl. */
#ifndef B2BD_SMTP_H
#define B2BD_SMTP_H

#include <stddef.h>

/* One email. Every string is UTF-8 and may hold anything (CR, LF, control characters,
 * invalid UTF-8): header values are sanitized and encoded here. NULL means empty/absent. */
struct smtp_message {
    const char *from;       /* "Shop <shop@example.com>", "\"Shop\" <...>" or a bare address;
                               no CR or LF anywhere (else invalid) */
    const char *to;         /* one bare address */
    const char *subject;    /* any content: control characters dropped, non-ASCII RFC 2047 */
    const char *text;       /* text/plain; charset=UTF-8 part (NULL: no such part) */
    const char *html;       /* text/html; charset=UTF-8 part (NULL: no such part) */
    const char *message_id; /* stable per notification, e.g. "<uuid@b2bd>" or "uuid@b2bd"
                               (no '@': "@b2bd" added); only atext and '.' are kept; NULL or
                               nothing usable: no Message-ID header */
    const char *to_name;    /* optional display name for To */
};

struct smtp_settings {
    const char *url;      /* smtp://host:port or smtps://host:port */
    const char *username; /* NULL or "": no AUTH */
    const char *password;
    long timeout_ms;      /* connect timeout and whole-transfer timeout; <= 0: curl's defaults */
    int starttls;         /* 0 none, 1 try (CURLUSESSL_TRY), 2 required (CURLUSESSL_ALL) */
    const char *ca_file;  /* NULL: the system's CAs; else the CAs (PEM) to verify the server with */
};

enum smtp_outcome {
    SMTP_SENT,
    SMTP_TRANSIENT, /* retry later: connection refused/reset, timeout, login denied, 4xx */
    SMTP_PERMANENT  /* 5xx reply, invalid address */
};

struct smtp_result {
    enum smtp_outcome outcome;
    long reply_code; /* the server's last reply code, 0 if none */
    char error[256]; /* "" when sent; never holds the password */
};

/* Holds a CURL easy handle reused across sends, so the connection is reused.
 * curl_global_init(CURL_GLOBAL_DEFAULT) must have been called once by the program
 * before the first smtp_client_new (it is not thread-safe; this module never calls it).
 * A client is used by one thread at a time. */
struct smtp_client;

/* Copies the settings. Returns NULL when out of memory. */
struct smtp_client *smtp_client_new(const struct smtp_settings *s);
void smtp_client_free(struct smtp_client *c);

/* Builds the MIME message with curl_mime_* and sends it: MAIL FROM / RCPT TO take the bare
 * addresses. An address that is empty, not one '@' between non-empty parts, longer than
 * 254 bytes, not valid UTF-8, or holding a control character, space or one of <>()[],;:\"
 * (and a from holding CR or LF anywhere) is SMTP_PERMANENT "invalid address (from|to)",
 * reply_code 0, without any connection. Out of memory: SMTP_TRANSIENT. */
void smtp_send(struct smtp_client *c, const struct smtp_message *m, struct smtp_result *out);

/* An unstructured header value (Subject) as it is put in the message: C0 controls (CR,
 * LF, TAB...), DEL and C1 controls dropped, invalid UTF-8 bytes replaced by U+FFFD; kept as
 * is when that leaves printable ASCII without "=?" of at most 900 bytes, else written as
 * RFC 2047 encoded-words (=?UTF-8?B?...?=, each at most 75 characters, never splitting a
 * UTF-8 sequence) separated by CRLF SP (folding: still one header line).
 * snprintf-like: returns the full length; writes at most size-1 bytes and a NUL. */
size_t smtp_header_value(const char *raw, char *buf, size_t size);

/* The header block smtp_send gives curl for m (From, To, Subject, Date (now), Message-ID,
 * MIME-Version; each line ending CRLF; curl adds the Content-Type with the boundary).
 * snprintf-like. Returns 0 (and "" in buf) when an address is invalid. */
size_t smtp_format_headers(const struct smtp_message *m, char *buf, size_t size);

#endif
