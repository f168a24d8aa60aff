/* decode: turns the bytes of one Kafka message into a validated, typed command. */
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "b2bd/decode.h"

/*
 * Decisions (where the contract leaves a choice open):
 * - Parsing uses JSON_DECODE_ANY (so `123` or `"x"` is JSON, hence NOT_A_COMMAND, not
 *   NOT_JSON), JSON_ALLOW_NUL (so a \u0000 inside a string is parsed and then rejected
 *   as INVALID with its field: PostgreSQL text and jsonb cannot hold it) and
 *   JSON_REJECT_DUPLICATES. A message whose only fault is a duplicate key is still JSON:
 *   it is parsed again without the flag (the last value wins) to read `command_id`, and
 *   if it is a command it is rejected as INVALID "duplicate key", with the key's path
 *   in `field`.
 * - What jansson cannot load is NOT_JSON, including valid JSON it refuses: nesting
 *   deeper than 2048, integers beyond 64 bits, a \u0000 inside an object key.
 * - JSON null counts as absent everywhere.
 * - Identifiers (ids of companies, locations, customers, orders; `actor`, `import_id`)
 *   are 1 to 255 Unicode code points and may not hold control characters (C0, DEL,
 *   C1): they end up in Kafka keys and logs. Names and other free text are taken as
 *   sent, control characters included (the contract says so); only NUL is refused
 *   there, as anywhere in the message, including fields we otherwise ignore.
 * - Required names (`name` of shop.upsert and company.upsert) must not be empty; free
 *   text fields (names, phone) are at most 1000 code points, `account_url` at most
 *   2048. Template parts (`subject`, `text`, `html`) have no limit but the message's.
 * - Tags follow the id length rule (1 to 255 code points) but may hold control
 *   characters; duplicates are compared case-insensitively with the C.UTF-8 locale's
 *   towlower (ASCII only if that locale is missing), the first spelling is kept.
 * - An id listed twice in one array (assign and company.upsert locations, revoke
 *   `location_ids`, notify `customer_ids`) is INVALID, at the second occurrence.
 * - revoke: `location_ids` is read only with scope `locations`; with another scope it
 *   is ignored, whatever it holds.
 * - suspend, resume: `company_id` required; `customer_id` absent or null means the whole
 *   company, any other non-id value is INVALID on payload.customer_id.
 * - notify: with `resend_of`, `customer_ids` is ignored (the contract says so) and not
 *   validated. `resend_of` is kept as sent (any case).
 * - `total` is a decimal string: an optional '-', 1 to 20 digits, optionally '.' and
 *   1 to 10 digits. `placed_at`/`issued_at`: RFC 3339 `date-time` with 'T' (or 't'),
 *   year 0001 or later, a real calendar date, seconds up to 60, any fraction.
 * - customer.data_request and customer.redact take `customer_id` or `email`, not both
 *   (INVALID on payload.email). customer.merge with the same id twice is INVALID on
 *   payload.merge_customer_id. shop.redact ignores what its payload holds.
 * - The hash (idem_hash.c) is SHA-256 of json_dumps(JSON_COMPACT | JSON_SORT_KEYS |
 *   JSON_ENSURE_ASCII) of {"payload", "shop_id", "type"}; it never changes once commands
 *   are stored.
 * - On a failed allocation the outcome is DECODE_REJECTED with B2BD_ERR_INTERNAL
 *   (not a rejection code: callers should check b2bd_code_is_rejection()).
 */

#define FIELD_MAX sizeof(((struct b2bd_err *)0)->field)
#define ID_MAX DECODE_ID_MAX
#define TEXT_MAX 1000
#define URL_MAX 2048
#define TAGS_MAX 250
/* jansson's nesting limit (jansson_config.h). */
#define MAX_DEPTH JSON_PARSER_MAX_DEPTH

/* ---- field access ------------------------------------------------------------
 * Helpers return 0 when all is well, -1 with *err set otherwise. `base` is the JSON
 * path of the object ("" for the envelope, "payload", "payload.locations[1]"). */

static void make_field(char field[FIELD_MAX], const char *base, const char *key)
{
    /* base and key are the decoder's own names and indexes; a path cut at FIELD_MAX
     * still names the field well enough */
    size_t n = 0;
    for (const char *p = base; *p && n < FIELD_MAX - 1; p++)
        field[n++] = *p;
    if (base[0] && n < FIELD_MAX - 1)
        field[n++] = '.';
    for (const char *p = key; *p && n < FIELD_MAX - 1; p++)
        field[n++] = *p;
    field[n] = '\0';
}

static int oom(struct b2bd_err *err)
{
    b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL, "out of memory");
    return -1;
}

static int invalid(struct b2bd_err *err, const char *field, const char *what)
{
    b2bd_err_set(err, B2BD_INVALID, field, "%s %s", field, what);
    return -1;
}

/* obj[key] into *out and its path into field: 1 if present, 0 if absent or null (an
 * error when required), -1 on error. */
static int lookup(const json_t *obj, const char *base, const char *key, bool required,
                  char field[FIELD_MAX], json_t **out, struct b2bd_err *err)
{
    make_field(field, base, key);
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = NULL;
        return required ? invalid(err, field, "is required") : 0;
    }
    *out = v;
    return 1;
}

/* A JSON string without NUL. */
static int string_value(const json_t *v, const char *field, const char **out,
                        struct b2bd_err *err)
{
    if (!json_is_string(v))
        return invalid(err, field, "must be a string");
    const char *s = json_string_value(v);
    if (memchr(s, '\0', json_string_length(v)))
        return invalid(err, field, "must not contain a NUL character (\\u0000)");
    *out = s;
    return 0;
}

/* A string of min..max code points. */
static int text_value(const json_t *v, const char *field, size_t min, size_t max,
                      const char **out, struct b2bd_err *err)
{
    if (string_value(v, field, out, err))
        return -1;
    size_t n = decode_utf8_count(*out, json_string_length(v));
    if (n < min || n > max) {
        if (min == 1 && n == 0)
            return invalid(err, field, "must not be empty");
        b2bd_err_set(err, B2BD_INVALID, field, "%s must be %zu to %zu characters long, not %zu",
                     field, min, max, n);
        return -1;
    }
    return 0;
}

/* An identifier: 1 to 255 code points, no control characters. */
static int id_value(const json_t *v, const char *field, const char **out,
                    struct b2bd_err *err)
{
    if (text_value(v, field, 1, ID_MAX, out, err))
        return -1;
    if (decode_has_control(*out))
        return invalid(err, field, "must not contain control characters");
    return 0;
}

static int get_id(const json_t *obj, const char *base, const char *key, bool required,
                  const char **out, struct b2bd_err *err)
{
    char field[FIELD_MAX];
    json_t *v;
    int r = lookup(obj, base, key, required, field, &v, err);
    return r <= 0 ? r : id_value(v, field, out, err);
}

static int get_text(const json_t *obj, const char *base, const char *key, bool required,
                    size_t max, const char **out, struct b2bd_err *err)
{
    char field[FIELD_MAX];
    json_t *v;
    int r = lookup(obj, base, key, required, field, &v, err);
    return r <= 0 ? r : text_value(v, field, required ? 1 : 0, max, out, err);
}

/* A string of any length (template parts). */
static int get_string(const json_t *obj, const char *base, const char *key, bool required,
                      const char **out, struct b2bd_err *err)
{
    char field[FIELD_MAX];
    json_t *v;
    int r = lookup(obj, base, key, required, field, &v, err);
    return r <= 0 ? r : string_value(v, field, out, err);
}

static int get_email(const json_t *obj, const char *base, const char *key, bool required,
                     const char **out, struct b2bd_err *err)
{
    char field[FIELD_MAX];
    json_t *v;
    int r = lookup(obj, base, key, required, field, &v, err);
    if (r <= 0)
        return r;
    if (string_value(v, field, out, err))
        return -1;
    return decode_is_email(*out) ? 0 : invalid(err, field, "is not a valid email address");
}

/* A string checked by `ok`, described by `what` when it fails. */
static int get_checked(const json_t *obj, const char *base, const char *key, bool required,
                       bool (*ok)(const char *), const char *what, const char **out,
                       struct b2bd_err *err)
{
    char field[FIELD_MAX];
    json_t *v;
    int r = lookup(obj, base, key, required, field, &v, err);
    if (r <= 0)
        return r;
    if (!json_is_string(v))
        return invalid(err, field, what);
    if (string_value(v, field, out, err))
        return -1;
    return ok(*out) ? 0 : invalid(err, field, what);
}

static int get_bool(const json_t *obj, const char *base, const char *key, bool *out,
                    struct b2bd_err *err)
{
    char field[FIELD_MAX];
    json_t *v;
    int r = lookup(obj, base, key, false, field, &v, err);
    if (r <= 0)
        return r;
    if (!json_is_boolean(v))
        return invalid(err, field, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

/* One of `names` (n of them, in enum order); *out is left alone when absent. */
static int get_enum(const json_t *obj, const char *base, const char *key, bool required,
                    const char *const *names, int n, int *out, struct b2bd_err *err)
{
    char field[FIELD_MAX];
    json_t *v;
    const char *s;
    int r = lookup(obj, base, key, required, field, &v, err);
    if (r <= 0)
        return r;
    if (string_value(v, field, &s, err))
        return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    char list[128] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
    b2bd_err_set(err, B2BD_INVALID, field, "%s must be %s", field, list);
    return -1;
}

static int get_object(const json_t *obj, const char *base, const char *key, bool required,
                      json_t **out, struct b2bd_err *err)
{
    char field[FIELD_MAX];
    int r = lookup(obj, base, key, required, field, out, err);
    if (r <= 0)
        return r;
    return json_is_object(*out) ? 1 : invalid(err, field, "must be an object");
}

/* obj[key] as an array: 1 if present, 0 if absent, -1 on error. */
static int get_array(const json_t *obj, const char *base, const char *key, bool required,
                     bool nonempty, json_t **out, struct b2bd_err *err)
{
    char field[FIELD_MAX];
    int r = lookup(obj, base, key, required, field, out, err);
    if (r <= 0)
        return r;
    if (!json_is_array(*out))
        return invalid(err, field, "must be an array");
    if (nonempty && json_array_size(*out) == 0)
        return invalid(err, field, "must not be empty");
    return 1;
}

/* ---- duplicates -------------------------------------------------------------- */

struct idx_str {
    const char *s;
    size_t idx;
};

static int cmp_idx_str(const void *a, const void *b)
{
    const struct idx_str *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* The smallest index whose string appeared earlier in v into *dup (SIZE_MAX if none).
 * Sorting keeps this O(n log n) for long lists. */
static int find_dup(const char *const *v, size_t n, size_t *dup, struct b2bd_err *err)
{
    *dup = SIZE_MAX;
    if (n < 2)
        return 0;
    struct idx_str *a = malloc(n * sizeof *a);
    if (!a)
        return oom(err);
    for (size_t i = 0; i < n; i++)
        a[i] = (struct idx_str){v[i], i};
    qsort(a, n, sizeof *a, cmp_idx_str);
    for (size_t i = 1; i < n; i++)
        if (strcmp(a[i - 1].s, a[i].s) == 0 && a[i].idx < *dup)
            *dup = a[i].idx;
    free(a);
    return 0;
}

/* An array of ids into a malloc'd array (*out, *n kept consistent for decode_free),
 * with no id twice. */
static int get_id_array(const json_t *obj, const char *key, bool required, bool nonempty,
                        const char ***out, size_t *n, struct b2bd_err *err)
{
    json_t *arr;
    int r = get_array(obj, "payload", key, required, nonempty, &arr, err);
    if (r <= 0)
        return r;
    size_t len = json_array_size(arr);
    if (len == 0)
        return 0;
    if (!(*out = malloc(len * sizeof **out)))
        return oom(err);
    char field[FIELD_MAX];
    for (size_t i = 0; i < len; i++) {
        snprintf(field, sizeof field, "payload.%s[%zu]", key, i);
        if (id_value(json_array_get(arr, i), field, &(*out)[i], err))
            return -1;
        (*n)++;
    }
    size_t dup;
    if (find_dup(*out, len, &dup, err))
        return -1;
    if (dup != SIZE_MAX) {
        snprintf(field, sizeof field, "payload.%s[%zu]", key, dup);
        return invalid(err, field, "is listed twice");
    }
    return 0;
}

/* ---- per type ------------------------------------------------------------------ */

static const char *const role_names[] = {"ordering_only", "location_admin"};

static int decode_assign(const json_t *p, struct b2bd_assign *a, struct b2bd_err *err)
{
    json_t *c, *locs;
    if (get_id(p, "payload", "company_id", true, &a->company_id, err)
        || get_object(p, "payload", "customer", true, &c, err) < 0
        || get_id(c, "payload.customer", "id", false, &a->customer_id, err)
        || get_email(c, "payload.customer", "email", false, &a->email, err))
        return -1;
    if (!a->customer_id && !a->email)
        return invalid(err, "payload.customer", "needs an id or an email");
    if (get_text(c, "payload.customer", "first_name", false, TEXT_MAX, &a->first_name, err)
        || get_text(c, "payload.customer", "last_name", false, TEXT_MAX, &a->last_name, err)
        || get_text(c, "payload.customer", "phone", false, TEXT_MAX, &a->phone, err)
        || get_array(p, "payload", "locations", true, false, &locs, err) < 0)
        return -1;
    size_t n = json_array_size(locs);
    if (n) {
        if (!(a->locations = malloc(n * sizeof *a->locations)))
            return oom(err);
        char base[FIELD_MAX];
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(locs, i);
            struct b2bd_loc_role *lr = &a->locations[i];
            int role = 0;
            snprintf(base, sizeof base, "payload.locations[%zu]", i);
            if (!json_is_object(e))
                return invalid(err, base, "must be an object");
            if (get_id(e, base, "location_id", true, &lr->location_id, err)
                || get_enum(e, base, "role", true, role_names, 2, &role, err))
                return -1;
            lr->role = (enum b2bd_role)role;
            a->n_locations++;
        }
        const char **ids = malloc(n * sizeof *ids);
        if (!ids)
            return oom(err);
        for (size_t i = 0; i < n; i++)
            ids[i] = a->locations[i].location_id;
        size_t dup;
        int r = find_dup(ids, n, &dup, err);
        free(ids);
        if (r)
            return -1;
        if (dup != SIZE_MAX) {
            snprintf(base, sizeof base, "payload.locations[%zu].location_id", dup);
            return invalid(err, base, "is listed twice");
        }
    }
    return get_id(p, "payload", "migrate_orders_to", false, &a->migrate_orders_to, err)
           || get_bool(p, "payload", "notify", &a->notify, err) ? -1 : 0;
}

static int decode_revoke(const json_t *p, struct b2bd_revoke *r, struct b2bd_err *err)
{
    static const char *const scopes[] = {"locations", "all_locations", "company"};
    int scope = 0;
    if (get_id(p, "payload", "company_id", true, &r->company_id, err)
        || get_id(p, "payload", "customer_id", true, &r->customer_id, err)
        || get_enum(p, "payload", "scope", true, scopes, 3, &scope, err))
        return -1;
    r->scope = (enum b2bd_revoke_scope)scope;
    if (r->scope == SCOPE_LOCATIONS
        && get_id_array(p, "location_ids", true, true, &r->location_ids, &r->n_location_ids,
                        err))
        return -1;
    if (get_bool(p, "payload", "remove_migrated_orders", &r->remove_migrated_orders, err))
        return -1;
    if (r->remove_migrated_orders && r->scope != SCOPE_COMPANY)
        return invalid(err, "payload.remove_migrated_orders",
                       "may only be true with scope \"company\"");
    return 0;
}

/* suspend, resume: customer_id absent or null means the whole company. */
static int decode_suspend(const json_t *p, struct b2bd_suspend *s, struct b2bd_err *err)
{
    return get_id(p, "payload", "company_id", true, &s->company_id, err)
                   || get_id(p, "payload", "customer_id", false, &s->customer_id, err)
               ? -1
               : 0;
}

static int decode_migrate(const json_t *p, struct b2bd_migrate *m, struct b2bd_err *err)
{
    return get_id(p, "payload", "company_id", true, &m->company_id, err)
                   || get_id(p, "payload", "location_id", true, &m->location_id, err)
                   || get_id(p, "payload", "customer_id", true, &m->customer_id, err)
               ? -1
               : 0;
}

static int decode_notify(const json_t *p, struct b2bd_notify *nt, struct b2bd_err *err)
{
    static const char *const recipients[] = {"customer", "staff"};
    int recipient = RECIPIENT_CUSTOMER;
    if (get_id(p, "payload", "company_id", true, &nt->company_id, err)
        || get_id(p, "payload", "location_id", false, &nt->location_id, err)
        || get_checked(p, "payload", "resend_of", false, decode_is_uuid,
                       "must be a notification id (a UUID)", &nt->resend_of, err))
        return -1;
    if (!nt->resend_of
        && get_id_array(p, "customer_ids", true, true, &nt->customer_ids, &nt->n_customer_ids,
                        err))
        return -1;
    if (get_enum(p, "payload", "recipient", false, recipients, 2, &recipient, err)
        || get_email(p, "payload", "staff_email", false, &nt->staff_email, err)
        || get_bool(p, "payload", "preview", &nt->preview, err))
        return -1;
    nt->recipient = (enum b2bd_recipient)recipient;
    return 0;
}

/* Every upsert's optional `source_updated_at`. */
static int get_source_updated_at(const json_t *p, const char **out, struct b2bd_err *err)
{
    return get_checked(p, "payload", "source_updated_at", false, decode_is_rfc3339,
                       "must be an RFC 3339 timestamp such as \"2026-11-22T10:00:00Z\"", out, err);
}

static int decode_shop(const json_t *p, struct b2bd_shop_upsert *s, struct b2bd_err *err)
{
    return get_text(p, "payload", "name", true, TEXT_MAX, &s->name, err)
                   || get_text(p, "payload", "account_url", false, URL_MAX, &s->account_url, err)
                   || get_email(p, "payload", "from_email", false, &s->from_email, err)
                   || get_email(p, "payload", "staff_email", false, &s->staff_email, err)
                   || get_bool(p, "payload", "b2b_only", &s->b2b_only, err)
                   || get_source_updated_at(p, &s->source_updated_at, err)
               ? -1
               : 0;
}

static int decode_company(const json_t *p, struct b2bd_company_upsert *c,
                          struct b2bd_err *err)
{
    json_t *locs;
    int r;
    if (get_id(p, "payload", "company_id", true, &c->company_id, err)
        || get_text(p, "payload", "name", true, TEXT_MAX, &c->name, err)
        || get_source_updated_at(p, &c->source_updated_at, err)
        || (r = get_array(p, "payload", "locations", false, false, &locs, err)) < 0)
        return -1;
    size_t n = r ? json_array_size(locs) : 0;
    if (n == 0)
        return 0;
    if (!(c->locations = malloc(n * sizeof *c->locations)))
        return oom(err);
    const char **ids = malloc(n * sizeof *ids);
    if (!ids)
        return oom(err);
    char base[FIELD_MAX];
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(locs, i);
        struct b2bd_location_upsert *l = &c->locations[i];
        l->name = NULL;
        snprintf(base, sizeof base, "payload.locations[%zu]", i);
        if (!json_is_object(e) || get_id(e, base, "location_id", true, &l->location_id, err)
            || get_text(e, base, "name", false, TEXT_MAX, &l->name, err)) {
            free(ids);
            return json_is_object(e) ? -1 : invalid(err, base, "must be an object");
        }
        ids[i] = l->location_id;
        c->n_locations++;
    }
    size_t dup;
    r = find_dup(ids, n, &dup, err);
    free(ids);
    if (r)
        return -1;
    if (dup != SIZE_MAX) {
        snprintf(base, sizeof base, "payload.locations[%zu].location_id", dup);
        return invalid(err, base, "is listed twice");
    }
    return 0;
}

/* Case-insensitive equality of two UTF-8 strings (loc may be 0: ASCII only). */
static bool same_tag(const char *a, const char *b, locale_t loc)
{
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;
    while (*p && *q) {
        uint32_t x = decode_utf8_next(&p), y = decode_utf8_next(&q);
        if (x == y)
            continue;
        if (loc) {
            x = (uint32_t)towlower_l((wint_t)x, loc);
            y = (uint32_t)towlower_l((wint_t)y, loc);
        } else {
            x = x < 0x80 && x >= 'A' && x <= 'Z' ? x + 32 : x;
            y = y < 0x80 && y >= 'A' && y <= 'Z' ? y + 32 : y;
        }
        if (x != y)
            return false;
    }
    return !*p && !*q;
}

/* Adds tag t to the kept ones unless it is already there; 1 added, 0 a duplicate. */
static int add_tag(struct b2bd_customer_upsert *c, const char *t, locale_t loc)
{
    for (size_t k = 0; k < c->n_tags; k++)
        if (same_tag(c->tags[k], t, loc))
            return 0;
    c->tags[c->n_tags++] = t;
    return 1;
}

static int decode_tags(const json_t *p, struct b2bd_customer_upsert *c, struct b2bd_err *err)
{
    json_t *arr;
    int r = get_array(p, "payload", "tags", false, false, &arr, err);
    if (r <= 0 || json_array_size(arr) == 0)
        return r < 0 ? -1 : 0;
    size_t n = json_array_size(arr);
    if (!(c->tags = malloc((n < TAGS_MAX ? n : TAGS_MAX) * sizeof *c->tags)))
        return oom(err);
    locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    char field[FIELD_MAX];
    r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        const char *t;
        snprintf(field, sizeof field, "payload.tags[%zu]", i);
        if (text_value(json_array_get(arr, i), field, 1, ID_MAX, &t, err))
            r = -1;
        else if (c->n_tags == TAGS_MAX) {
            bool dup = false;
            for (size_t k = 0; k < c->n_tags && !dup; k++)
                dup = same_tag(c->tags[k], t, loc);
            if (!dup)
                r = invalid(err, "payload.tags", "holds more than 250 different tags");
        } else
            add_tag(c, t, loc);
    }
    if (loc)
        freelocale(loc);
    return r;
}

static int decode_customer(const json_t *p, struct b2bd_customer_upsert *c,
                           struct b2bd_err *err)
{
    return get_id(p, "payload", "customer_id", true, &c->customer_id, err)
                   || get_email(p, "payload", "email", true, &c->email, err)
                   || get_text(p, "payload", "first_name", false, TEXT_MAX, &c->first_name, err)
                   || get_text(p, "payload", "last_name", false, TEXT_MAX, &c->last_name, err)
                   || get_text(p, "payload", "phone", false, TEXT_MAX, &c->phone, err)
                   || get_source_updated_at(p, &c->source_updated_at, err)
                   || decode_tags(p, c, err)
               ? -1
               : 0;
}

static int decode_order(const json_t *p, struct b2bd_order_upsert *o, struct b2bd_err *err)
{
    static const char *const statuses[] = {"open", "closed", "cancelled", "deleted"};
    int status = 0;
    if (get_id(p, "payload", "order_id", true, &o->order_id, err)
        || get_id(p, "payload", "customer_id", true, &o->customer_id, err)
        || get_enum(p, "payload", "status", true, statuses, 4, &status, err)
        || get_id(p, "payload", "company_id", false, &o->company_id, err)
        || get_id(p, "payload", "location_id", false, &o->location_id, err))
        return -1;
    o->status = (enum b2bd_order_status)status;
    if (o->company_id && !o->location_id)
        return invalid(err, "payload.location_id", "is required when company_id is set");
    if (!o->company_id && o->location_id)
        return invalid(err, "payload.company_id", "is required when location_id is set");
    return get_checked(p, "payload", "placed_at", false, decode_is_rfc3339,
                       "must be an RFC 3339 timestamp such as \"2026-11-22T10:00:00Z\"",
                       &o->placed_at, err)
                   || get_checked(p, "payload", "total", false, decode_is_decimal,
                                  "must be a decimal number in a string, such as \"12.50\"",
                                  &o->total, err)
                   || get_checked(p, "payload", "currency", false, decode_is_currency,
                                  "must be three upper-case letters (ISO 4217), such as \"EUR\"",
                                  &o->currency, err)
                   || get_source_updated_at(p, &o->source_updated_at, err)
               ? -1
               : 0;
}

static int decode_template(const json_t *p, struct b2bd_template_update *t,
                           struct b2bd_err *err)
{
    return get_string(p, "payload", "subject", true, &t->subject, err)
                   || get_string(p, "payload", "text", true, &t->text, err)
                   || get_string(p, "payload", "html", true, &t->html, err)
               ? -1
               : 0;
}

static int decode_merge(const json_t *p, struct b2bd_customer_merge *m, struct b2bd_err *err)
{
    if (get_id(p, "payload", "customer_id", true, &m->customer_id, err)
        || get_id(p, "payload", "merge_customer_id", true, &m->merge_customer_id, err))
        return -1;
    if (strcmp(m->customer_id, m->merge_customer_id) == 0)
        return invalid(err, "payload.merge_customer_id", "must not be the customer_id itself");
    return 0;
}

/* {"customer_id"} or {"email"}: exactly one. */
static int decode_customer_ref(const json_t *p, struct b2bd_customer_ref *r, struct b2bd_err *err)
{
    if (get_id(p, "payload", "customer_id", false, &r->customer_id, err)
        || get_email(p, "payload", "email", false, &r->email, err))
        return -1;
    if (!r->customer_id && !r->email)
        return invalid(err, "payload.customer_id", "is required (or email)");
    if (r->customer_id && r->email)
        return invalid(err, "payload.email", "must not be given with customer_id (one of the two)");
    return 0;
}

static int decode_payload(struct b2bd_command *cmd, struct b2bd_err *err)
{
    const json_t *p = cmd->payload;
    switch (cmd->type) {
    case CMD_ASSIGN: return decode_assign(p, &cmd->u.assign, err);
    case CMD_REVOKE: return decode_revoke(p, &cmd->u.revoke, err);
    case CMD_MIGRATE: return decode_migrate(p, &cmd->u.migrate, err);
    case CMD_SUSPEND:
    case CMD_RESUME: return decode_suspend(p, &cmd->u.suspend, err);
    case CMD_NOTIFY: return decode_notify(p, &cmd->u.notify, err);
    case CMD_SHOP_UPSERT: return decode_shop(p, &cmd->u.shop, err);
    case CMD_COMPANY_UPSERT: return decode_company(p, &cmd->u.company, err);
    case CMD_CUSTOMER_UPSERT: return decode_customer(p, &cmd->u.customer, err);
    case CMD_ORDER_UPSERT: return decode_order(p, &cmd->u.order, err);
    case CMD_TEMPLATE_UPDATE: return decode_template(p, &cmd->u.tmpl, err);
    case CMD_CUSTOMER_MERGE: return decode_merge(p, &cmd->u.merge, err);
    case CMD_CUSTOMER_DATA_REQUEST:
    case CMD_CUSTOMER_REDACT: return decode_customer_ref(p, &cmd->u.subject, err);
    case CMD_SHOP_REDACT: return 0;
    case CMD_UNKNOWN: break;
    }
    return invalid(err, "type", "is not a known type");
}

/* ---- the whole message ------------------------------------------------------- */

/* Finds a string holding NUL anywhere under v (fields we do not read too: the payload
 * is stored, and PostgreSQL cannot hold \u0000); path is the JSON path so far. */
static int find_nul(const json_t *v, char *path, size_t size, size_t len,
                    struct b2bd_err *err)
{
    if (len >= size)
        len = size - 1;
    if (json_is_string(v)) {
        if (!memchr(json_string_value(v), '\0', json_string_length(v)))
            return 0;
        return invalid(err, path, "must not contain a NUL character (\\u0000)");
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int n = snprintf(path + len, size - len, "[%zu]", i);
            if (find_nul(json_array_get(v, i), path, size, len + (size_t)(n > 0 ? n : 0), err))
                return -1;
        }
        path[len] = '\0';
    } else if (json_is_object(v)) {
        const char *key;
        json_t *m;
        json_object_foreach((json_t *)v, key, m) {
            int n = snprintf(path + len, size - len, "%s%s", len ? "." : "", key);
            if (find_nul(m, path, size, len + (size_t)(n > 0 ? n : 0), err))
                return -1;
        }
        path[len] = '\0';
    }
    return 0;
}

/* A parse frame of the duplicate-key scanner below. */
struct scan_frame {
    bool is_object;
    bool expect_key;
    size_t index;
    size_t key_off, key_len;
};

/* Writes the key whose JSON text (escapes included, without the quotes) is raw. */
static int put_key(char *out, size_t size, const char *sep, const char *raw, size_t rawlen)
{
    char *quoted = NULL;
    json_t *k = NULL;
    if (asprintf(&quoted, "\"%.*s\"", (int)rawlen, raw) >= 0)
        k = json_loads(quoted, JSON_DECODE_ANY, NULL);
    free(quoted);
    int n = json_is_string(k) ? snprintf(out, size, "%s%s", sep, json_string_value(k))
                              : snprintf(out, size, "%s%.*s", sep, (int)rawlen, raw);
    json_decref(k);
    return n;
}

/* Builds the JSON path of the duplicate key that jansson found just before byte `pos`
 * (the end of the key) of buf, which is valid JSON up to there: a light tokenizer that
 * tracks objects, arrays, keys and indexes. *key gets the duplicate key itself. */
static void dup_key_path(const char *buf, size_t pos, char *field, size_t fsize, char *key,
                         size_t ksize)
{
    field[0] = key[0] = '\0';
    struct scan_frame *st = calloc(MAX_DEPTH + 2, sizeof *st);
    if (!st)
        return;
    int depth = 0; /* frames in use */
    for (size_t i = 0; i < pos; i++) {
        char c = buf[i];
        struct scan_frame *top = depth ? &st[depth - 1] : NULL;
        if ((c == '{' || c == '[') && depth < MAX_DEPTH + 2)
            st[depth++] = (struct scan_frame){c == '{', c == '{', 0, 0, 0};
        else if ((c == '}' || c == ']') && depth)
            depth--;
        else if (c == ',' && top) {
            top->index++;
            top->expect_key = top->is_object;
        } else if (c == ':' && top)
            top->expect_key = false;
        else if (c == '"') {
            size_t start = ++i;
            while (i < pos && buf[i] != '"')
                i += buf[i] == '\\' ? 2 : 1;
            if (top && top->is_object && top->expect_key) {
                top->key_off = start;
                top->key_len = (i < pos ? i : pos) - start;
            }
        }
    }
    size_t len = 0;
    for (int d = 0; d < depth && len < fsize - 1; d++) {
        const struct scan_frame *f = &st[d];
        int n = f->is_object ? put_key(field + len, fsize - len, len ? "." : "",
                                       buf + f->key_off, f->key_len)
                             : snprintf(field + len, fsize - len, "[%zu]", f->index);
        len += n > 0 ? (size_t)n : 0;
    }
    if (depth && st[depth - 1].is_object)
        put_key(key, ksize, "", buf + st[depth - 1].key_off, st[depth - 1].key_len);
    free(st);
}

static enum decode_outcome dead_letter(struct b2bd_err *err, enum b2bd_code code,
                                       const char *msg)
{
    b2bd_err_set(err, code, NULL, "%s", msg);
    return DECODE_DEAD_LETTER;
}

/* Loads buf; a duplicate key sets *dup_err (with field and message) and the last value
 * wins. Returns NULL when the bytes are not JSON (err set). */
static json_t *load(const void *buf, size_t len, struct b2bd_err *dup_err,
                    struct b2bd_err *err)
{
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_error_t je;
    json_t *root = json_loadb(buf, len, flags | JSON_REJECT_DUPLICATES, &je);
    if (!root && json_error_code(&je) == json_error_duplicate_key) {
        char field[FIELD_MAX], key[FIELD_MAX];
        size_t pos = je.position > 0 && (size_t)je.position <= len ? (size_t)je.position : 0;
        dup_key_path(buf, pos, field, sizeof field, key, sizeof key);
        b2bd_err_set(dup_err, B2BD_INVALID, field[0] ? field : NULL,
                     "duplicate key in an object: %s", key[0] ? key : je.text);
        root = json_loadb(buf, len, flags, &je);
    }
    if (!root) {
        char where[64];
        snprintf(where, sizeof where, " (line %d, column %d)", je.line, je.column);
        b2bd_err_set(err, B2BD_NOT_JSON, NULL, "not UTF-8 JSON%s: %s", where, je.text);
    }
    return root;
}

/* Reads the envelope's strings as sent: NULL when absent or not a string. */
static const char *peek_string(const json_t *root, const char *key)
{
    return json_string_value(json_object_get(root, key));
}

/* "dry_run" (CONTRACT "Trace context and dry runs"): absent, null or false is a command
 * like any other; true makes assign, revoke, migrate, suspend and resume a dry run
 * (cmd->dry_run); not a boolean, or true on another type, is INVALID. */
static int validate_dry_run(struct b2bd_command *cmd, struct b2bd_err *err)
{
    const json_t *v = json_object_get(cmd->root, "dry_run");
    if (!v || json_is_null(v) || json_is_false(v))
        return 0;
    if (!json_is_true(v)) {
        b2bd_err_set(err, B2BD_INVALID, "dry_run", "dry_run must be a boolean");
        return -1;
    }
    switch (cmd->type) {
    case CMD_ASSIGN:
    case CMD_REVOKE:
    case CMD_MIGRATE:
    case CMD_SUSPEND:
    case CMD_RESUME:
        cmd->dry_run = true;
        return 0;
    default:
        b2bd_err_set(err, B2BD_INVALID, "dry_run", "%s commands have no dry run",
                     decode_type_name(cmd->type));
        return -1;
    }
}

static int validate_envelope(struct b2bd_command *cmd, enum b2bd_topic topic,
                             struct b2bd_err *err)
{
    const json_t *root = cmd->root;
    char field[FIELD_MAX];
    json_t *v;
    const char *s;
    if (lookup(root, "", "type", true, field, &v, err) < 0 || string_value(v, "type", &s, err))
        return -1;
    cmd->type = decode_type_from_name(s, json_string_length(v));
    if (cmd->type == CMD_UNKNOWN) {
        b2bd_err_set(err, B2BD_UNKNOWN_TYPE, "type", "unknown command type: %s", s);
        return -1;
    }
    /* the bulk topic takes every type, checked as on its own topic (CONTRACT "Bulk lane") */
    if (topic != TOPIC_BULK && decode_type_topic(cmd->type) != topic) {
        b2bd_err_set(err, B2BD_WRONG_TOPIC, "type", "%s commands belong on %s, not on %s",
                     decode_type_name(cmd->type),
                     decode_topic_suffix(decode_type_topic(cmd->type)),
                     decode_topic_suffix(topic));
        return -1;
    }
    if (get_checked(root, "", "shop_id", true, decode_is_shop_id,
                    "must be 1 to 64 characters of A-Za-z0-9._:-", &s, err)
        || get_checked(root, "", "issued_at", false, decode_is_rfc3339,
                       "must be an RFC 3339 timestamp such as \"2026-11-22T10:00:00Z\"", &s, err)
        || get_id(root, "", "actor", false, &s, err)
        || get_id(root, "", "import_id", false, &s, err)
        || get_object(root, "", "payload", true, &v, err) < 0)
        return -1;
    cmd->payload = v;
    return validate_dry_run(cmd, err);
}

/* Frees the typed arrays and clears the typed part. */
static void free_typed(struct b2bd_command *cmd)
{
    switch (cmd->type) {
    case CMD_ASSIGN: free(cmd->u.assign.locations); break;
    case CMD_REVOKE: free(cmd->u.revoke.location_ids); break;
    case CMD_NOTIFY: free(cmd->u.notify.customer_ids); break;
    case CMD_COMPANY_UPSERT: free(cmd->u.company.locations); break;
    case CMD_CUSTOMER_UPSERT: free(cmd->u.customer.tags); break;
    default: break;
    }
    memset(&cmd->u, 0, sizeof cmd->u);
}

enum decode_outcome decode_command(const void *buf, size_t len, size_t max_bytes,
                                   enum b2bd_topic topic, struct b2bd_command *cmd,
                                   struct b2bd_err *err)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = CMD_UNKNOWN;
    b2bd_err_clear(err);

    if (len > max_bytes) {
        b2bd_err_set(err, B2BD_TOO_LARGE, NULL, "message of %zu bytes is over the limit of %zu",
                     len, max_bytes);
        return DECODE_DEAD_LETTER;
    }
    if (!buf || len == 0)
        return dead_letter(err, B2BD_NOT_JSON, "empty message");

    struct b2bd_err dup;
    b2bd_err_clear(&dup);
    if (!(cmd->root = load(buf, len, &dup, err)))
        return DECODE_DEAD_LETTER;

    json_t *cid = json_object_get(cmd->root, "command_id");
    if (!json_is_object(cmd->root))
        return dead_letter(err, B2BD_NOT_A_COMMAND, "not a JSON object");
    if (!cid)
        return dead_letter(err, B2BD_NOT_A_COMMAND, "no command_id");
    if (!json_is_string(cid) || json_string_length(cid) != 36
        || !decode_is_uuid(json_string_value(cid)))
        return dead_letter(err, B2BD_NOT_A_COMMAND, "command_id is not a UUID string");
    const char *id = json_string_value(cid);
    for (int i = 0; i < 36; i++)
        cmd->command_id[i] = (char)(id[i] >= 'A' && id[i] <= 'F' ? id[i] + 32 : id[i]);
    cmd->command_id[36] = '\0';

    cmd->type_name = peek_string(cmd->root, "type");
    cmd->shop_id = peek_string(cmd->root, "shop_id");
    cmd->issued_at = peek_string(cmd->root, "issued_at");
    cmd->actor = peek_string(cmd->root, "actor");
    cmd->import_id = peek_string(cmd->root, "import_id");
    if (cmd->type_name)
        cmd->type = decode_type_from_name(cmd->type_name,
                                   json_string_length(json_object_get(cmd->root, "type")));

    char path[512] = "";
    if (dup.code != B2BD_OK) {
        *err = dup;
    } else if (!validate_envelope(cmd, topic, err) && !decode_payload(cmd, err)
               && !find_nul(cmd->root, path, sizeof path, 0, err)) {
        if (decode_hash(cmd->type_name, cmd->shop_id, cmd->payload, cmd->hash) == 0)
            return DECODE_OK;
        oom(err);
    }
    free_typed(cmd);
    if (!cmd->payload && json_is_object(json_object_get(cmd->root, "payload")))
        cmd->payload = json_object_get(cmd->root, "payload");
    return DECODE_REJECTED;
}

void decode_free(struct b2bd_command *cmd)
{
    if (!cmd)
        return;
    free_typed(cmd);
    json_decref(cmd->root);
    memset(cmd, 0, sizeof *cmd);
    cmd->type = CMD_UNKNOWN;
}

