/* smtp: builds one email (multipart/alternative, text + HTML) and sends it with libcurl. */
#include "b2bd/smtp.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#define ADDRESS_MAX 254
#define RAW_SUBJECT_MAX 900 /* "Subject: " + this stays far below 998 */
#define RAW_PHRASE_MAX 200
#define MSGID_LEFT_MAX 200
#define MSGID_RIGHT_MAX 64 /* counting the '@' */
#define WORD_BYTES 45 /* 45 bytes -> 60 base64 chars + 12 = 72 <= 75 */

struct smtp_client {
    CURL *curl;
    char *password; /* only to scrub it from error texts */
};

/* --- a growable string; an allocation failure sets oom ------------------------------- */

struct str {
    char *s;
    size_t len, cap;
    bool oom;
};

static void str_add(struct str *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n > SIZE_MAX / 4 || b->len > SIZE_MAX / 4) { /* no email is that large */
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void str_adds(struct str *b, const char *s) { str_add(b, s, strlen(s)); }

static void str_addc(struct str *b, char c) { str_add(b, &c, 1); }

static void str_free(struct str *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

static const char *str_get(const struct str *b) { return b->s ? b->s : ""; }

/* snprintf-like copy of b into buf. */
static size_t str_out(const struct str *b, char *buf, size_t size)
{
    if (size > 0) {
        size_t n = b->len < size - 1 ? b->len : size - 1;
        if (n)
            memcpy(buf, b->s, n);
        buf[n] = '\0';
    }
    return b->len;
}

/* --- UTF-8 ---------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. Sets *cp. */
static size_t utf8_seq(const unsigned char *p, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF))
        || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* Appends raw with C0, DEL and C1 controls dropped and invalid bytes as U+FFFD. */
static void sanitize(struct str *out, const char *raw)
{
    const unsigned char *p = (const unsigned char *)(raw ? raw : "");
    while (*p) {
        uint32_t cp;
        size_t n = utf8_seq(p, &cp);
        if (n == 0) {
            str_add(out, "\xEF\xBF\xBD", 3);
            p++;
            continue;
        }
        if (!(cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)))
            str_add(out, (const char *)p, n);
        p += n;
    }
}

/* True if s is printable ASCII without "=?" (nothing a reader could decode). */
static bool plain_ascii(const char *s)
{
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7E)
            return false;
        if (p[0] == '=' && p[1] == '?')
            return false;
    }
    return true;
}

/* Appends s (valid UTF-8) as encoded-words joined by CRLF SP. */
static void encode_words(struct str *out, const char *s, size_t len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    bool first = true;
    while (i < len) {
        size_t n = len - i < WORD_BYTES ? len - i : WORD_BYTES;
        while (i + n < len && n > 0 && (p[i + n] & 0xC0) == 0x80)
            n--; /* never end a word inside a UTF-8 sequence */
        if (!first)
            str_add(out, "\r\n ", 3);
        first = false;
        str_adds(out, "=?UTF-8?B?");
        for (size_t j = 0; j < n; j += 3) {
            uint32_t v = (uint32_t)p[i + j] << 16;
            if (j + 1 < n)
                v |= (uint32_t)p[i + j + 1] << 8;
            if (j + 2 < n)
                v |= p[i + j + 2];
            char q[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63],
                         j + 1 < n ? b64[(v >> 6) & 63] : '=', j + 2 < n ? b64[v & 63] : '='};
            str_add(out, q, 4);
        }
        str_adds(out, "?=");
        i += n;
    }
}

static void unstructured(struct str *out, const char *raw)
{
    struct str s = {0};
    sanitize(&s, raw);
    if (s.oom)
        out->oom = true;
    else if (plain_ascii(str_get(&s)) && s.len <= RAW_SUBJECT_MAX)
        str_add(out, str_get(&s), s.len);
    else
        encode_words(out, s.s, s.len);
    str_free(&s);
}

/* A display name: a quoted-string when plain ASCII, else encoded-words. Leading and
 * trailing spaces are trimmed. Appends nothing for an empty name. */
static void phrase(struct str *out, const char *raw, size_t rawlen)
{
    struct str r = {0}, s = {0};
    str_add(&r, raw, rawlen);
    sanitize(&s, str_get(&r));
    const char *b = str_get(&s);
    size_t n = s.len;
    while (n && *b == ' ')
        b++, n--;
    while (n && b[n - 1] == ' ')
        n--;
    if (r.oom || s.oom) {
        out->oom = true;
    } else if (n > 0) {
        bool plain = n <= RAW_PHRASE_MAX;
        for (size_t i = 0; plain && i < n; i++)
            if ((unsigned char)b[i] > 0x7E || (b[i] == '=' && i + 1 < n && b[i + 1] == '?'))
                plain = false;
        if (plain) {
            str_addc(out, '"');
            for (size_t i = 0; i < n; i++) {
                if (b[i] == '"' || b[i] == '\\')
                    str_addc(out, '\\');
                str_addc(out, b[i]);
            }
            str_addc(out, '"');
        } else {
            encode_words(out, b, n);
        }
    }
    str_free(&r);
    str_free(&s);
}

/* --- addresses ------------------------------------------------------------------------ */

static bool valid_address(const char *a, size_t n)
{
    if (n == 0 || n > ADDRESS_MAX)
        return false;
    size_t at = n, ats = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)a[i];
        if (c == '@') {
            at = i;
            ats++;
        }
        if (c < 0x80) {
            if (c <= 0x20 || c == 0x7F || strchr("<>()[],;:\\\"", c))
                return false;
            i++;
        } else {
            char tmp[5] = {0};
            uint32_t cp;
            memcpy(tmp, a + i, n - i < 4 ? n - i : 4);
            size_t k = utf8_seq((const unsigned char *)tmp, &cp);
            if (k == 0 || (cp >= 0x80 && cp <= 0x9F))
                return false;
            i += k;
        }
    }
    return ats == 1 && at > 0 && at + 1 < n;
}

/* Splits "Name <addr>", "\"Name\" <addr>" or "addr" (surrounding spaces ignored) into
 * the name (raw, maybe empty, quotes removed) and the address. False if the address is
 * invalid. Pointers point into s. */
static bool parse_mailbox(const char *s, const char **name, size_t *namelen, const char **addr,
                          size_t *addrlen)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        n--;
    while (n && *s == ' ')
        s++, n--;
    *name = s;
    *namelen = 0;
    if (n && s[n - 1] == '>') {
        const char *lt = NULL;
        for (size_t i = n - 1; i-- > 0;)
            if (s[i] == '<') {
                lt = s + i;
                break;
            }
        if (!lt)
            return false;
        *addr = lt + 1;
        *addrlen = (size_t)(s + n - 1 - *addr);
        size_t nl = (size_t)(lt - s);
        while (nl && s[nl - 1] == ' ')
            nl--;
        if (nl >= 2 && s[0] == '"' && s[nl - 1] == '"') {
            *name = s + 1;
            nl -= 2;
        }
        *namelen = nl;
    } else {
        *addr = s;
        *addrlen = n;
    }
    return valid_address(*addr, *addrlen);
}

/* "Name" <addr>, or addr when there is no name. */
static void mailbox(struct str *out, const char *name, size_t namelen, const char *addr,
                    size_t addrlen)
{
    size_t before = out->len;
    phrase(out, name, namelen);
    if (out->len > before) {
        str_adds(out, " <");
        str_add(out, addr, addrlen);
        str_addc(out, '>');
    } else {
        str_add(out, addr, addrlen);
    }
}

/* "<left@right>" from the characters of raw allowed in a msg-id (atext and '.'); the last
 * '@' separates the parts ("@b2bd" is added when there is none); the left part is cut to
 * 200 and the right one to 63 characters. Nothing when no left part remains. */
static void message_id(struct str *out, const char *raw)
{
    static const char ok[] = "!#$%&'*+/=?^_`{|}~.-";
    struct str s = {0};
    const char *last_at = raw ? strrchr(raw, '@') : NULL;
    size_t left = 0;
    for (const char *p = raw ? raw : ""; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (p == last_at) {
            left = s.len;
            str_addc(&s, '@');
        } else if (s.len >= (!last_at || p < last_at ? MSGID_LEFT_MAX : left + MSGID_RIGHT_MAX)) {
            continue; /* keep the header line short */
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                   || (c < 0x80 && strchr(ok, c))) {
            str_addc(&s, (char)c);
        }
    }
    if (!last_at) {
        left = s.len;
        str_adds(&s, "@b2bd");
    }
    if (s.oom) {
        out->oom = true;
    } else if (left > 0) {
        str_addc(out, '<');
        str_add(out, s.s, s.len);
        if (left + 1 == s.len)
            str_adds(out, "b2bd"); /* nothing after '@' */
        str_addc(out, '>');
    }
    str_free(&s);
}

/* RFC 5322 date, in UTC, without locale. */
static void rfc5322_now(char out[40])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

/* --- the header lines ----------------------------------------------------------------- */

enum { H_FROM, H_TO, H_SUBJECT, H_DATE, H_MSGID, H_MIME, H_COUNT };

struct parsed {
    const char *from_name, *from_addr, *to_name, *to_addr;
    size_t from_namelen, from_addrlen, to_namelen, to_addrlen;
};

/* Returns NULL, or "from" / "to" naming the invalid address. */
static const char *parse_message(const struct smtp_message *m, struct parsed *p)
{
    if (!parse_mailbox(m->from, &p->from_name, &p->from_namelen, &p->from_addr,
                       &p->from_addrlen))
        return "from";
    if (strpbrk(m->from, "\r\n"))
        return "from";
    p->to_addr = m->to ? m->to : "";
    p->to_addrlen = strlen(p->to_addr);
    if (!valid_address(p->to_addr, p->to_addrlen))
        return "to";
    p->to_name = m->to_name ? m->to_name : "";
    p->to_namelen = strlen(p->to_name);
    return NULL;
}

/* Fills h[] with complete header lines (no CRLF at the end; "" for an absent header). */
static bool build_headers(const struct smtp_message *m, const struct parsed *p,
                          struct str h[H_COUNT])
{
    char date[40];
    rfc5322_now(date);
    str_adds(&h[H_FROM], "From: ");
    mailbox(&h[H_FROM], p->from_name, p->from_namelen, p->from_addr, p->from_addrlen);
    str_adds(&h[H_TO], "To: ");
    mailbox(&h[H_TO], p->to_name, p->to_namelen, p->to_addr, p->to_addrlen);
    str_adds(&h[H_SUBJECT], "Subject: ");
    unstructured(&h[H_SUBJECT], m->subject);
    str_adds(&h[H_DATE], "Date: ");
    str_adds(&h[H_DATE], date);
    struct str id = {0};
    message_id(&id, m->message_id);
    if (id.len) {
        str_adds(&h[H_MSGID], "Message-ID: ");
        str_add(&h[H_MSGID], id.s, id.len);
    }
    bool oom = id.oom;
    str_free(&id);
    str_adds(&h[H_MIME], "MIME-Version: 1.0");
    for (int i = 0; i < H_COUNT; i++)
        oom = oom || h[i].oom;
    return !oom;
}

static void free_headers(struct str h[H_COUNT])
{
    for (int i = 0; i < H_COUNT; i++)
        str_free(&h[i]);
}

size_t smtp_header_value(const char *raw, char *buf, size_t size)
{
    struct str s = {0};
    unstructured(&s, raw);
    size_t n = s.oom ? 0 : str_out(&s, buf, size);
    if (s.oom && size)
        buf[0] = '\0';
    str_free(&s);
    return n;
}

size_t smtp_format_headers(const struct smtp_message *m, char *buf, size_t size)
{
    struct parsed p;
    struct str h[H_COUNT] = {{0}}, all = {0};
    size_t n = 0;
    if (size)
        buf[0] = '\0';
    if (!parse_message(m, &p) && build_headers(m, &p, h)) {
        for (int i = 0; i < H_COUNT; i++)
            if (h[i].len) {
                str_add(&all, h[i].s, h[i].len);
                str_add(&all, "\r\n", 2);
            }
        if (!all.oom)
            n = str_out(&all, buf, size);
    }
    free_headers(h);
    str_free(&all);
    return n;
}

/* --- sending -------------------------------------------------------------------------- */

struct smtp_client *smtp_client_new(const struct smtp_settings *s)
{
    struct smtp_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->curl = curl_easy_init();
    if (!c->curl || (s->password && !(c->password = strdup(s->password)))) {
        smtp_client_free(c);
        return NULL;
    }
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, s->url ? s->url : "");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (s->timeout_ms > 0) {
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    }
    if (s->username && *s->username) {
        curl_easy_setopt(h, CURLOPT_USERNAME, s->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->password ? s->password : "");
    } else if (s->password && *s->password) {
        /* the user name is in the URL (smtp://user@host); the password from a file */
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->password);
    }
    if (s->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
    curl_easy_setopt(h, CURLOPT_USE_SSL,
                     s->starttls == 2   ? (long)CURLUSESSL_ALL
                     : s->starttls == 1 ? (long)CURLUSESSL_TRY
                                        : (long)CURLUSESSL_NONE);
    return c;
}

void smtp_client_free(struct smtp_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    if (c->password) {
        volatile char *p = c->password;
        while (*p)
            *p++ = '\0';
        free(c->password);
    }
    free(c);
}

static void set_error(struct smtp_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct smtp_result *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
}

/* Replaces every occurrence of the password in out->error by "***". */
static void scrub(struct smtp_result *out, const char *password)
{
    if (!password || !*password)
        return;
    size_t pl = strlen(password);
    char *from = out->error, *p;
    while ((p = strstr(from, password)) != NULL) {
        memmove(p + 3, p + pl, strlen(p + pl) + 1);
        memcpy(p, "***", 3);
        from = p + 3;
    }
}

/* The body with every line ending (CRLF, lone LF, lone CR) as CRLF, so quoted-printable
 * keeps the lines. */
static void crlf_body(struct str *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\r') {
            str_add(out, "\r\n", 2);
            if (s[1] == '\n')
                s++;
        } else if (*s == '\n') {
            str_add(out, "\r\n", 2);
        } else {
            str_addc(out, *s);
        }
    }
}

static bool add_part(curl_mime *mime, const char *body, const char *type, struct str *keep)
{
    crlf_body(keep, body);
    if (keep->oom)
        return false;
    curl_mimepart *part = curl_mime_addpart(mime);
    return part && curl_mime_data(part, str_get(keep), keep->len) == CURLE_OK
           && curl_mime_type(part, type) == CURLE_OK
           && curl_mime_encoder(part, "quoted-printable") == CURLE_OK;
}

static enum smtp_outcome classify(CURLcode rc, long reply)
{
    if (rc == CURLE_OK)
        return SMTP_SENT;
    if (rc == CURLE_LOGIN_DENIED)
        return SMTP_TRANSIENT; /* the settings, not this message */
    if (reply >= 500 && reply <= 599)
        return SMTP_PERMANENT;
    return SMTP_TRANSIENT; /* 4xx, no connection, timeouts, resets and the rest */
}

void smtp_send(struct smtp_client *c, const struct smtp_message *m, struct smtp_result *out)
{
    memset(out, 0, sizeof *out);
    out->outcome = SMTP_PERMANENT;
    struct parsed p;
    const char *bad = parse_message(m, &p);
    if (bad) {
        set_error(out, "invalid address (%s)", bad);
        return;
    }
    struct str h[H_COUNT] = {{0}}, from = {0}, to = {0}, text = {0}, html = {0};
    struct curl_slist *headers = NULL, *rcpt = NULL;
    curl_mime *mime = NULL;
    bool ok = build_headers(m, &p, h);
    for (int i = 0; ok && i < H_COUNT; i++) {
        if (!h[i].len)
            continue;
        struct curl_slist *n = curl_slist_append(headers, h[i].s);
        ok = n != NULL;
        headers = n ? n : headers;
    }
    if (ok) {
        /* curl adds "; boundary=..." to a user Content-Type of the top-level multipart */
        struct curl_slist *n = curl_slist_append(headers, "Content-Type: multipart/alternative");
        ok = n != NULL;
        headers = n ? n : headers;
    }
    str_addc(&from, '<');
    str_add(&from, p.from_addr, p.from_addrlen);
    str_addc(&from, '>');
    str_addc(&to, '<');
    str_add(&to, p.to_addr, p.to_addrlen);
    str_addc(&to, '>');
    ok = ok && !from.oom && !to.oom && (rcpt = curl_slist_append(NULL, to.s)) != NULL;
    ok = ok && (mime = curl_mime_init(c->curl)) != NULL;
    if (ok && m->text)
        ok = add_part(mime, m->text, "text/plain; charset=UTF-8", &text);
    if (ok && (m->html || !m->text))
        ok = add_part(mime, m->html ? m->html : "", "text/html; charset=UTF-8", &html);
    if (!ok) {
        out->outcome = SMTP_TRANSIENT;
        set_error(out, "out of memory");
        goto done;
    }

    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *e = c->curl;
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, from.s);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_MIMEPOST, mime);
    CURLcode rc = curl_easy_perform(e);
    long reply = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &reply);
    curl_easy_setopt(e, CURLOPT_MIMEPOST, NULL);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, NULL);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, NULL);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);

    out->reply_code = reply;
    out->outcome = classify(rc, reply);
    if (rc != CURLE_OK) {
        const char *msg = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        if (reply)
            set_error(out, "%s (curl %d, reply %ld)", msg, (int)rc, reply);
        else
            set_error(out, "%s (curl %d)", msg, (int)rc);
        scrub(out, c->password);
    }
done:
    curl_mime_free(mime);
    curl_slist_free_all(headers);
    curl_slist_free_all(rcpt);
    free_headers(h);
    str_free(&from);
    str_free(&to);
    str_free(&text);
    str_free(&html);
}
