/* ctl_import: b2bctl import: CSV rows or JSON Lines to commands, sent and followed to their results. */
#include "b2bd/ctl_import.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "b2bd/ctl_cli.h"
#include "b2bd/ctl_common.h"
#include "b2bd/ctl_queries.h"
#include "b2bd/ctl_send.h"
#include "b2bd/kafka.h"
#include "b2bd/util.h"
#include "b2bd/validate.h"

static const char *const col_names[CTL_COL_COUNT] = {
    "email", "first_name", "last_name", "phone", "customer_id", "location_id", "role", "notify"};

/* 6b2bd1a0-5e1e-4c7a-9b1d-1a2b3c4d5e6f: fixed, so ids are the same on every machine */
const unsigned char ctl_import_namespace[16] = {0x6b, 0x2b, 0xd1, 0xa0, 0x5e, 0x1e, 0x4c, 0x7a,
                                                0x9b, 0x1d, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f};

void ctl_uuid_v5(const unsigned char ns[16], const void *name, size_t len, char out[37])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) || !EVP_DigestUpdate(ctx, ns, 16)
        || !EVP_DigestUpdate(ctx, name, len) || !EVP_DigestFinal_ex(ctx, md, &md_len))
        abort();
    EVP_MD_CTX_free(ctx);
    md[6] = (unsigned char)((md[6] & 0x0F) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3F) | 0x80);
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[md[i] >> 4];
        *o++ = hex[md[i] & 15];
    }
    *o = '\0';
}

void ctl_import_default_id(const char *data, size_t len, const struct ctl_import_opts *opts,
                           char out[40])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) || !EVP_DigestUpdate(ctx, data, len))
        abort();
    if (opts) {
        const char *parts[] = {opts->shop, opts->company, opts->location, opts->role,
                               opts->notify ? "notify" : ""};
        for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
            const char *s = parts[i] ? parts[i] : "";
            if (!EVP_DigestUpdate(ctx, "\0", 1) || !EVP_DigestUpdate(ctx, s, strlen(s)))
                abort();
        }
    }
    if (!EVP_DigestFinal_ex(ctx, md, &md_len))
        abort();
    EVP_MD_CTX_free(ctx);
    memcpy(out, "imp-", 4);
    for (int i = 0; i < 16; i++)
        snprintf(out + 4 + 2 * i, 3, "%02x", md[i]);
}

int ctl_import_header(const struct ctl_csv_record *hdr, struct ctl_import_columns *cols,
                      char *why, size_t why_len)
{
    for (int c = 0; c < CTL_COL_COUNT; c++)
        cols->at[c] = -1;
    cols->n_fields = hdr->n;
    for (size_t i = 0; i < hdr->n; i++) {
        const char *name = hdr->fields[i];
        while (*name == ' ')
            name++;
        size_t n = strlen(name);
        while (n && name[n - 1] == ' ')
            n--;
        int found = -1;
        for (int c = 0; c < CTL_COL_COUNT; c++)
            if (strlen(col_names[c]) == n && !strncasecmp(name, col_names[c], n))
                found = c;
        if (found < 0) {
            snprintf(why, why_len, "unknown column \"%.*s\" (known: email, first_name, last_name, "
                                   "phone, customer_id, location_id, role, notify)", (int)(n > 64 ? 64 : n), name);
            return -1;
        }
        if (cols->at[found] >= 0) {
            snprintf(why, why_len, "column %s appears twice", col_names[found]);
            return -1;
        }
        cols->at[found] = (int)i;
    }
    if (cols->at[CTL_COL_EMAIL] < 0 && cols->at[CTL_COL_CUSTOMER_ID] < 0) {
        snprintf(why, why_len, "the header needs an email or a customer_id column");
        return -1;
    }
    return 0;
}

/* The trimmed value of a column in buf (NULL when absent or empty, or when it does not
 * fit buf: then *too_long is set, for the row to be rejected rather than cut). */
static const char *row_value(const struct ctl_import_columns *cols, const struct ctl_csv_record *rec,
                             enum ctl_col c, char *buf, size_t buf_len, bool *too_long)
{
    if (cols->at[c] < 0)
        return NULL;
    const char *s = rec->fields[cols->at[c]];
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (!n)
        return NULL;
    if (n >= buf_len) {
        *too_long = true;
        return NULL;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

static json_t *row_fail(char *field, size_t field_len, const char *col, char *why, size_t why_len,
                        const char *msg)
{
    snprintf(field, field_len, "%s", col);
    snprintf(why, why_len, "%s", msg);
    return NULL;
}

json_t *ctl_import_row(const struct ctl_import_opts *opts, const struct ctl_import_columns *cols,
                       const struct ctl_csv_record *rec, char *field, size_t field_len, char *why,
                       size_t why_len)
{
    if (rec->n != cols->n_fields) {
        char m[96];
        snprintf(m, sizeof m, "expected %zu fields, found %zu", cols->n_fields, rec->n);
        return row_fail(field, field_len, "", why, why_len, m);
    }
    for (size_t i = 0; i < rec->n; i++)
        if (!ctl_utf8_valid(rec->fields[i], strlen(rec->fields[i])))
            return row_fail(field, field_len, "", why, why_len, "not UTF-8");
    /* room for the longest value the contract allows: a name of 1,000 four-byte
     * characters (ids: 255 of them, emails: 254 bytes); a longer one is the row's error */
    enum { VLEN = 4 * 1000 + 1 };
    char v[CTL_COL_COUNT][VLEN];
    const char *val[CTL_COL_COUNT];
    for (int c = 0; c < CTL_COL_COUNT; c++) {
        bool too_long = false;
        val[c] = row_value(cols, rec, (enum ctl_col)c, v[c], VLEN, &too_long);
        if (too_long)
            return row_fail(field, field_len, col_names[c], why, why_len,
                            "longer than the contract allows");
    }
    const char *email = val[CTL_COL_EMAIL], *cid = val[CTL_COL_CUSTOMER_ID];
    if (!email && !cid)
        return row_fail(field, field_len, cols->at[CTL_COL_EMAIL] >= 0 ? "email" : "customer_id", why,
                        why_len, "an email or a customer_id is required");
    if (email && !decode_is_email(email))
        return row_fail(field, field_len, "email", why, why_len, "not an email address");
    const char *role = val[CTL_COL_ROLE] ? val[CTL_COL_ROLE] : opts->role ? opts->role : "ordering_only";
    if (strcmp(role, "ordering_only") && strcmp(role, "location_admin"))
        return row_fail(field, field_len, "role", why, why_len,
                        "must be ordering_only or location_admin");
    bool notify = opts->notify;
    if (val[CTL_COL_NOTIFY]) {
        static const char *const yes[] = {"true", "yes", "1", "y"}, *const no[] = {"false", "no", "0", "n"};
        int which = -1;
        for (size_t i = 0; i < 4; i++) {
            if (!strcasecmp(val[CTL_COL_NOTIFY], yes[i]))
                which = 1;
            if (!strcasecmp(val[CTL_COL_NOTIFY], no[i]))
                which = 0;
        }
        if (which < 0)
            return row_fail(field, field_len, "notify", why, why_len,
                            "must be true or false (yes/no, 1/0)");
        notify = which;
    }
    const char *loc = val[CTL_COL_LOCATION_ID] ? val[CTL_COL_LOCATION_ID] : opts->location;

    json_t *customer = json_object();
    if (email) {
        json_object_set_new(customer, "email", json_string(email));
        if (cid)
            json_object_set_new(customer, "id", json_string(cid));
        static const enum ctl_col profile[] = {CTL_COL_FIRST_NAME, CTL_COL_LAST_NAME, CTL_COL_PHONE};
        for (size_t i = 0; i < 3; i++)
            if (val[profile[i]])
                json_object_set_new(customer, col_names[profile[i]], json_string(val[profile[i]]));
    } else {
        json_object_set_new(customer, "id", json_string(cid));
    }
    json_t *locations = json_array();
    if (loc)
        json_array_append_new(locations, json_pack("{s:s, s:s}", "location_id", loc, "role", role));
    json_t *payload = json_pack("{s:s, s:o, s:o}", "company_id", opts->company, "customer", customer,
                                "locations", locations);
    if (notify)
        json_object_set_new(payload, "notify", json_true());

    char *canon = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
    struct sbuf name = {0};
    sbuf_addf(&name, "%s\n%s\n%s", opts->import_id, opts->shop, canon);
    free(canon);
    char id[37];
    ctl_uuid_v5(ctl_import_namespace, name.s, name.len, id);
    sbuf_free(&name);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "command_id", id, "type", "assign", "shop_id",
                     opts->shop, "import_id", opts->import_id, "actor", "b2bctl-import", "payload",
                     payload);
}

json_t *ctl_import_jsonl(const char *import_id, const char *line, size_t len, char *why, size_t why_len)
{
    json_error_t je;
    json_t *cmd = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!cmd) {
        snprintf(why, why_len, "not JSON: %s", je.text);
        return NULL;
    }
    if (!json_is_object(cmd) || !json_is_string(json_object_get(cmd, "type"))
        || !json_is_string(json_object_get(cmd, "shop_id"))) {
        snprintf(why, why_len, "not a command (an object with a type and a shop_id)");
        json_decref(cmd);
        return NULL;
    }
    json_t *id = json_object_get(cmd, "command_id");
    if (id && !json_is_string(id)) {
        snprintf(why, why_len, "command_id is not a string");
        json_decref(cmd);
        return NULL;
    }
    if (!json_object_get(cmd, "import_id"))
        json_object_set_new(cmd, "import_id", json_string(import_id));
    if (!id) {
        struct sbuf name = {0};
        sbuf_addf(&name, "%s\n", import_id);
        sbuf_add(&name, line, len);
        char uid[37];
        ctl_uuid_v5(ctl_import_namespace, name.s, name.len, uid);
        sbuf_free(&name);
        json_object_set_new(cmd, "command_id", json_string(uid));
    }
    return cmd;
}

const char *ctl_import_error_column(const char *field)
{
    static const struct {
        const char *prefix, *col;
    } map[] = {{"payload.customer.email", "email"},
               {"payload.customer.first_name", "first_name"},
               {"payload.customer.last_name", "last_name"},
               {"payload.customer.phone", "phone"},
               {"payload.customer.id", "customer_id"},
               {"payload.customer", "email"},
               {"payload.notify", "notify"}};
    if (!field)
        return "";
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(field, map[i].prefix))
            return map[i].col;
    if (!strncmp(field, "payload.locations[", 18)) {
        const char *dot = strchr(field + 18, ']');
        if (dot && !strcmp(dot, "].role"))
            return "role";
        if (dot && !strcmp(dot, "].location_id"))
            return "location_id";
    }
    return field;
}

/* ------------------------------------------------------------------------ */
/* The run */

enum row_state { ROW_UNPARSEABLE, ROW_DUPLICATE, ROW_PENDING, ROW_APPLIED, ROW_REPEAT, ROW_REJECTED };

struct row {
    long line;
    char **fields;  /* CSV: the record's fields (n_fields); JSON Lines: one, the line */
    size_t n_fields;
    json_t *cmd;    /* NULL when unparseable or a duplicate */
    char id[37];
    enum row_state state;
    char *code, *field, *message;
};

struct run {
    char trace_id[33]; /* the run's trace (ctl_send), "" until the first command is sent */
    const struct b2bd_config *cfg;
    const char *path;
    char *data;
    size_t len;
    bool jsonl, json_out, tty;
    bool own_topics;    /* each command to its type's topic, not the bulk topic */
    bool dry_run;       /* every command a dry run (CONTRACT "Trace context and dry runs") */
    struct ctl_import_opts opts;
    char import_id[4 * 255 + 1]; /* an identifier: 255 characters of up to 4 bytes */
    long wait_timeout_s;
    struct row *rows;
    size_t n_rows, cap_rows;
    char **header;      /* CSV header fields */
    size_t n_header;
    json_t *by_id;      /* command_id -> row index */
    long sent, results, applied, repeats, rejected, unparseable, duplicates;
    json_t *codes;
    struct ctl_send *send; /* opened for the first command to send */
    bool send_failed;
    char started[32];
    int64_t t0;
    int64_t last_progress;
};

static struct row *run_add_row(struct run *r, long line)
{
    if (r->n_rows == r->cap_rows) {
        r->cap_rows = r->cap_rows ? r->cap_rows * 2 : 256;
        r->rows = realloc(r->rows, r->cap_rows * sizeof *r->rows);
        if (!r->rows)
            abort();
    }
    struct row *w = &r->rows[r->n_rows++];
    memset(w, 0, sizeof *w);
    w->line = line;
    return w;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

static void row_set_error(struct row *w, const char *code, const char *field, const char *msg)
{
    free(w->code);
    free(w->field);
    free(w->message);
    w->code = xstrdup(code);
    w->field = xstrdup(field);
    w->message = xstrdup(msg);
}

static void run_send_row(struct run *r, size_t i);

/* Takes a built command for a row: a repeated command_id is a duplicate. */
static void run_take_command(struct run *r, struct row *w, json_t *cmd)
{
    const char *id = json_string_value(json_object_get(cmd, "command_id"));
    snprintf(w->id, sizeof w->id, "%s", id);
    for (char *c = w->id; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (json_object_get(r->by_id, w->id)) {
        w->state = ROW_DUPLICATE;
        r->duplicates++;
        json_decref(cmd);
        return;
    }
    json_object_set_new(r->by_id, w->id, json_integer((json_int_t)(w - r->rows)));
    w->cmd = cmd;
    w->state = ROW_PENDING;
    run_send_row(r, (size_t)(w - r->rows));
}

static void run_unparseable(struct run *r, struct row *w, const char *field, const char *why)
{
    w->state = ROW_UNPARSEABLE;
    r->unparseable++;
    row_set_error(w, "UNPARSEABLE", field, why);
}

static int run_parse_csv(struct run *r)
{
    struct ctl_csv rd;
    struct ctl_csv_record rec = {0};
    char why[512], field[64];
    ctl_csv_init(&rd, r->data, r->len);
    int got = ctl_csv_next(&rd, &rec, why, sizeof why);
    if (got <= 0) {
        fprintf(stderr, "b2bctl: %s: %s\n", r->path, got == 0 ? "no header row" : why);
        ctl_csv_record_free(&rec);
        return -1;
    }
    struct ctl_import_columns cols;
    if (ctl_import_header(&rec, &cols, why, sizeof why) < 0) {
        fprintf(stderr, "b2bctl: %s:%ld: %s\n", r->path, rec.line, why);
        ctl_csv_record_free(&rec);
        return -1;
    }
    r->header = rec.fields;
    r->n_header = rec.n;
    memset(&rec, 0, sizeof rec);
    while ((got = ctl_csv_next(&rd, &rec, why, sizeof why)) != 0) {
        struct row *w = run_add_row(r, rec.line);
        if (got < 0) {
            run_unparseable(r, w, "", why);
            continue;
        }
        w->fields = rec.fields;
        w->n_fields = rec.n;
        json_t *cmd = ctl_import_row(&r->opts, &cols, &rec, field, sizeof field, why, sizeof why);
        rec.fields = NULL;
        rec.n = rec.cap = 0;
        if (!cmd)
            run_unparseable(r, w, field, why);
        else
            run_take_command(r, w, cmd);
    }
    ctl_csv_record_free(&rec);
    return 0;
}

static int run_parse_jsonl(struct run *r)
{
    char why[512];
    const char *p = r->data, *end = r->data + r->len;
    long line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        line++;
        size_t n = (size_t)(e - p);
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        size_t skip = 0;
        while (skip < n && (p[skip] == ' ' || p[skip] == '\t'))
            skip++;
        if (n > skip) {
            struct row *w = run_add_row(r, line);
            w->fields = malloc(sizeof *w->fields);
            w->fields[0] = strndup(p + skip, n - skip);
            w->n_fields = 1;
            json_t *cmd = ctl_import_jsonl(r->import_id, p + skip, n - skip, why, sizeof why);
            if (!cmd)
                run_unparseable(r, w, "", why);
            else
                run_take_command(r, w, cmd);
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

static void run_progress(struct run *r, const char *stage, int final)
{
    int64_t now = util_now_ms();
    if (!final && now - r->last_progress < (r->tty ? 200 : 5000))
        return;
    r->last_progress = now;
    long total = (long)json_object_size(r->by_id);
    long done = !strcmp(stage, "sending") ? r->sent : r->results;
    if (r->tty) {
        enum { W = 30 };
        int fill = total ? (int)(done * W / total) : W;
        char bar[W + 1];
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '-', (size_t)(W - fill));
        bar[W] = '\0';
        fprintf(stderr, "\r%-7s [%s] %ld/%ld  applied %ld  rejected %ld  %.1fs\033[K", stage, bar, done,
                total, r->applied, r->rejected, (double)(now - r->t0) / 1000.0);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "b2bctl import %s: %s %ld/%ld, applied %ld, rejected %ld, %.1fs\n", r->import_id,
                stage, done, total, r->applied, r->rejected, (double)(now - r->t0) / 1000.0);
    }
    fflush(stderr);
}

/* The first result of row number `tag` (ctl_send's result callback). */
static void run_take_result(void *arg, size_t tag, json_t *res)
{
    struct run *r = arg;
    struct row *w = &r->rows[tag];
    if (w->state != ROW_PENDING)
        return;
    r->results++;
    const char *status = json_string_value(json_object_get(res, "status"));
    if (status && !strcmp(status, "applied")) {
        const char *when = json_string_value(json_object_get(res, "processed_at"));
        r->applied++;
        if (when && strcmp(when, r->started) < 0) {
            w->state = ROW_REPEAT;
            r->repeats++;
        } else {
            w->state = ROW_APPLIED;
        }
    } else {
        json_t *err = json_object_get(res, "error");
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *field = json_string_value(json_object_get(err, "field"));
        code = code ? code : "?";
        w->state = ROW_REJECTED;
        r->rejected++;
        row_set_error(w, code, r->jsonl ? (field ? field : "") : ctl_import_error_column(field),
                      json_string_value(json_object_get(err, "message")));
        json_object_set_new(r->codes, code, json_integer(json_integer_value(json_object_get(r->codes, code)) + 1));
    }
}

static void run_tick(void *arg)
{
    run_progress(arg, "waiting", 0);
}

/* Sends row i's command as soon as it is built, so that b2bd applies the first rows
 * while the rest of the file is read (reading all first held the first command back by
 * the time it takes: 0.2-1.1 s for 10,000 rows). The sender is opened for the first
 * command; when it cannot be, nothing is sent and run_send_and_wait fails. */
static void run_send_row(struct run *r, size_t i)
{
    if (ctl_interrupted || r->send_failed)
        return;
    if (!r->send) {
        if (!(r->send = ctl_send_open(r->cfg, run_take_result, r))) {
            r->send_failed = true;
            return;
        }
        /* the bulk lane (CONTRACT "Bulk lane"): an import never holds up other work */
        if (!r->own_topics)
            ctl_send_to(r->send, "commands.bulk");
        util_now_rfc3339(r->started);
        snprintf(r->trace_id, sizeof r->trace_id, "%s", ctl_send_trace_id(r->send));
    }
    struct row *w = &r->rows[i];
    /* a dry run: the same command (and id), judged and undone, its result marked */
    if (r->dry_run)
        json_object_set_new(w->cmd, "dry_run", json_true());
    rd_kafka_resp_err_t e = ctl_send_command(r->send, w->cmd, NULL, 0, i);
    if (e) {
        fprintf(stderr, "b2bctl: %s:%ld: not sent: %s\n", r->path, w->line, rd_kafka_err2str(e));
        return;
    }
    json_decref(w->cmd); /* sent: only its id is needed from here on */
    w->cmd = NULL;
    r->sent++;
    run_progress(r, "sending", 0);
}

/* Once every row is read and its command sent: waits for the results. */
static int run_send_and_wait(struct run *r)
{
    struct ctl_send *s = r->send;
    if (!s)
        return -1;
    int undelivered = ctl_send_flush(s);
    if (undelivered > 0)
        fprintf(stderr, "b2bctl: %d commands not delivered\n", undelivered);
    ctl_send_wait(s, r->wait_timeout_s, true, run_tick);
    run_progress(r, "done", 1);
    ctl_send_close(s);
    r->send = NULL;
    return 0;
}

/* Writes the rejected and unparseable rows beside the input; removes a stale file when none. */
static int run_write_rejected(struct run *r, char **out_path)
{
    struct sbuf p = {0};
    sbuf_addf(&p, "%s.rejected.csv", r->path);
    *out_path = p.s;
    long n = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        n += r->rows[i].state == ROW_UNPARSEABLE || r->rows[i].state == ROW_REJECTED;
    if (!n) {
        if (unlink(p.s) < 0 && errno != ENOENT)
            fprintf(stderr, "b2bctl: %s: %s\n", p.s, strerror(errno));
        sbuf_free(&p);
        *out_path = NULL;
        return 0;
    }
    struct sbuf b = {0};
    size_t width = r->jsonl ? 1 : r->n_header;
    for (size_t c = 0; c < width; c++) {
        ctl_csv_quote(&b, r->jsonl ? "command" : r->header[c]);
        sbuf_adds(&b, ",");
    }
    sbuf_adds(&b, "line,error_code,error_field,error_message\r\n");
    for (size_t i = 0; i < r->n_rows; i++) {
        struct row *w = &r->rows[i];
        if (w->state != ROW_UNPARSEABLE && w->state != ROW_REJECTED)
            continue;
        for (size_t c = 0; c < width; c++) {
            ctl_csv_quote(&b, c < w->n_fields ? w->fields[c] : "");
            sbuf_adds(&b, ",");
        }
        sbuf_addf(&b, "%ld,", w->line);
        ctl_csv_quote(&b, w->code ? w->code : "");
        sbuf_adds(&b, ",");
        ctl_csv_quote(&b, w->field ? w->field : "");
        sbuf_adds(&b, ",");
        ctl_csv_quote(&b, w->message ? w->message : "");
        sbuf_adds(&b, "\r\n");
    }
    FILE *f = fopen(p.s, "w");
    int rc = 0;
    if (!f || fwrite(b.s, 1, b.len, f) != b.len || fclose(f) != 0) {
        fprintf(stderr, "b2bctl: %s: %s\n", p.s, strerror(errno));
        rc = -1;
    }
    sbuf_free(&b);
    return rc;
}

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->n_rows; i++) {
        struct row *w = &r->rows[i];
        for (size_t c = 0; c < w->n_fields; c++)
            free(w->fields[c]);
        free(w->fields);
        json_decref(w->cmd);
        free(w->code);
        free(w->field);
        free(w->message);
    }
    free(r->rows);
    for (size_t c = 0; c < r->n_header; c++)
        free(r->header[c]);
    free(r->header);
    json_decref(r->by_id);
    json_decref(r->codes);
    ctl_send_close(r->send);
    free(r->data);
}

int ctl_import_status_run(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    int json_out = ctl_flag(a, "json");
    const char *id = a->operands[0];
    struct b2bd_db db;
    struct b2bd_err err;
    if (ctl_db_open(cfg, &db) < 0)
        return 1;
    const char *v[] = {id};
    PGresult *res = ctl_query_run(&db, CTL_Q_IMPORT_STATUS, v, &err);
    if (!res) {
        fprintf(stderr, "b2bctl: %s\n", err.msg);
        db_free(&db);
        return 1;
    }
    long total = 0;
    const char *first = NULL, *last = NULL;
    json_t *by_type = json_object();
    for (int i = 0; i < PQntuples(res); i++) {
        long n = strtol(PQgetvalue(res, i, 1), NULL, 10);
        total += n;
        json_object_set_new(by_type, PQgetvalue(res, i, 0), json_integer(n));
        if (!first || strcmp(PQgetvalue(res, i, 2), first) < 0)
            first = PQgetvalue(res, i, 2);
        if (!last || strcmp(PQgetvalue(res, i, 3), last) > 0)
            last = PQgetvalue(res, i, 3);
    }
    if (json_out) {
        ctl_print_json(json_pack("{s:s, s:I, s:o, s:s?, s:s?}", "import_id", id, "applied",
                                 (json_int_t)total, "by_type", by_type, "first_processed_at", first,
                                 "last_processed_at", last));
    } else {
        if (!total) {
            printf("import %s: no applied command (rejected commands record nothing)\n", id);
        } else {
            printf("import %s: %ld applied, first %s, last %s\n", id, total, first, last);
            const char *t;
            json_t *n;
            json_object_foreach(by_type, t, n)
                printf("  %s: %lld\n", t, (long long)json_integer_value(n));
        }
        json_decref(by_type);
    }
    PQclear(res);
    db_free(&db);
    return total ? 0 : 1;
}

static int read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "b2bctl: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct sbuf b = {0};
    char buf[65536];
    size_t n;
    sbuf_add(&b, "", 0);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sbuf_add(&b, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "b2bctl: %s: read error\n", path);
        sbuf_free(&b);
        return -1;
    }
    *data = b.s;
    *len = b.len;
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

int ctl_import_run(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    struct run r = {0};
    r.cfg = cfg;
    r.opts.shop = ctl_opt(a, "shop");
    r.opts.company = ctl_opt(a, "company");
    r.opts.location = ctl_opt(a, "location");
    r.opts.role = ctl_opt(a, "role");
    r.opts.notify = ctl_flag(a, "notify");
    const char *import_id = ctl_opt(a, "import-id");
    r.wait_timeout_s = ctl_opt_long(a, "wait-timeout", 120);
    r.json_out = ctl_flag(a, "json");
    r.own_topics = ctl_flag(a, "own-topics");
    r.dry_run = ctl_flag(a, "dry-run");
    r.path = a->operands[0];
    if (r.wait_timeout_s <= 0)
        r.wait_timeout_s = 120;
    if (r.opts.role && strcmp(r.opts.role, "ordering_only") && strcmp(r.opts.role, "location_admin")) {
        fprintf(stderr, "b2bctl: --role must be ordering_only or location_admin\n");
        return 2;
    }
    if (import_id && !decode_is_id(import_id)) {
        fprintf(stderr, "b2bctl: --import-id must have 1 to 255 characters (UTF-8, no control characters)\n");
        return 2;
    }
    if (read_file(r.path, &r.data, &r.len) < 0)
        return 2;
    const char *first = r.data + strspn(r.data, " \t\r\n");
    if (!strncmp(first, "\xEF\xBB\xBF", 3))
        first += 3;
    r.jsonl = ends_with(r.path, ".jsonl") || ends_with(r.path, ".ndjson") || *first == '{';
    if (!r.jsonl && (!r.opts.shop || !r.opts.company)) {
        fprintf(stderr, "b2bctl: a CSV import needs --shop and --company\n");
        free(r.data);
        return 2;
    }
    if (r.opts.shop && !decode_is_shop_id(r.opts.shop)) {
        fprintf(stderr, "b2bctl: --shop: 1 to 64 characters of A-Za-z0-9._:-\n");
        free(r.data);
        return 2;
    }
    if (import_id)
        snprintf(r.import_id, sizeof r.import_id, "%s", import_id);
    else
        ctl_import_default_id(r.data, r.len, r.jsonl ? NULL : &r.opts, r.import_id);
    r.opts.import_id = r.import_id;
    r.by_id = json_object();
    r.codes = json_object();
    r.tty = isatty(STDERR_FILENO);
    r.t0 = util_now_ms();
    if ((r.jsonl ? run_parse_jsonl(&r) : run_parse_csv(&r)) < 0) {
        run_free(&r);
        return 2;
    }
    for (size_t i = 0; i < r.n_rows; i++)
        if (r.rows[i].state == ROW_UNPARSEABLE)
            fprintf(stderr, "b2bctl: %s:%ld: %s%s%s\n", r.path, r.rows[i].line,
                    *r.rows[i].field ? r.rows[i].field : "", *r.rows[i].field ? ": " : "",
                    r.rows[i].message);
    if (json_object_size(r.by_id) > 0 && run_send_and_wait(&r) < 0) {
        run_free(&r);
        return 1;
    }
    long missing = (long)json_object_size(r.by_id) - r.results;
    char *rejected_path = NULL;
    int wrote = run_write_rejected(&r, &rejected_path);
    double secs = (double)(util_now_ms() - r.t0) / 1000.0;
    if (r.json_out) {
        json_incref(r.codes);
        ctl_print_json(json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:s?, s:f, s:s?}",
                                 "import_id", r.import_id, "file", r.path, "dry_run", r.dry_run,
                                 "rows", (json_int_t)r.n_rows,
                                 "sent", (json_int_t)r.sent, "applied", (json_int_t)r.applied,
                                 "applied_new", (json_int_t)(r.applied - r.repeats),
                                 "already_applied", (json_int_t)r.repeats, "duplicates",
                                 (json_int_t)r.duplicates, "rejected", (json_int_t)r.rejected,
                                 "rejected_by_code", r.codes, "unparseable", (json_int_t)r.unparseable,
                                 "missing", (json_int_t)missing, "rejected_file", rejected_path,
                                 "seconds", secs, "trace_id", r.trace_id[0] ? r.trace_id : NULL));
    } else {
        printf("%simport %s: %zu rows from %s in %.1f s\n", r.dry_run ? "dry run of " : "", r.import_id,
               r.n_rows, r.path, secs);
        if (r.dry_run)
            printf("  nothing was applied: each row's result is what it would get now, on its own\n");
        if (r.trace_id[0])
            printf("  trace_id: %s\n", r.trace_id);
        printf("  applied: %ld (new %ld, already applied before this run %ld)\n", r.applied,
               r.applied - r.repeats, r.repeats);
        printf("  duplicates in the file (same command, sent once): %ld\n", r.duplicates);
        printf("  rejected: %ld\n", r.rejected);
        const char *code;
        json_t *cnt;
        json_object_foreach(r.codes, code, cnt)
            printf("    %s: %lld\n", code, (long long)json_integer_value(cnt));
        printf("  unparseable: %ld\n", r.unparseable);
        if (missing)
            printf("  no result (within --wait-timeout): %ld\n", missing);
        if (rejected_path)
            printf("  rejected and unparseable rows: %s\n", rejected_path);
    }
    int rc = (r.rejected || r.unparseable || missing || wrote < 0 || ctl_interrupted) ? 1 : 0;
    free(rejected_path);
    run_free(&r);
    return rc;
}
