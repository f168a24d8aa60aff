/* test_apply_diff: the randomized differential test of the set-based assign path.
 *
 * Random command sequences (assigns by id and by email in mixed and non-ASCII case,
 * revokes of every scope, suspends and resumes of companies and contacts, commands sent again, command ids reused with another
 * payload, companies near their 10,000-contact limit, email changes, dry runs of assign,
 * revoke, suspend and resume here and there and in bursts of assigns) are applied
 * through apply_batch, in batches of random sizes, to two databases that differ only in
 * bulk_assign (on: runs of plain assigns go to b2bd_assign_bulk; off: b2bd_assign one
 * by one). Both must give the same results (but event_id and processed_at), the same
 * access events (but event_id and occurred_at), in the same order, and the same rows
 * (customers, contacts, roles, seat counts, the inbox with each command's actor and
 * issued_at, access_history). Some commands carry an actor, an issued_at or both. The
 * pairs of databases differ in how PostgreSQL's lower() folds case: ICU (final sigma,
 * dotted I), glibc C.UTF-8, and C (ASCII only).
 *
 * Sequences are played in groups (B2BD_DIFF_GROUP, default 10), each in its own shop:
 * the group's batches are applied together, so that runs span shops as in a busy
 * partition, and each group goes to one of the pairs of databases in turn.
 *
 * Environment: B2BD_DIFF_SEED (default: from the clock; always printed),
 * B2BD_DIFF_SEQUENCES (default 150; a soak: 5000), B2BD_DIFF_GROUP, B2BD_DIFF_ONLY
 * (replay one group of the seed, as a failure names it), B2BD_DIFF_KEEP (keep the
 * databases of a failed run), B2BD_DIFF_VERBOSE (b2bd's debug log), B2BD_DIFF_FIXED=0
 * (leave out the reported cases, which come first; B2BD_DIFF_ONLY leaves them out too).
 * A difference prints the seed, the group (to replay it), its sequences' commands and
 * the first differing line, and fails. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "b2bd/log.h"
#include "b2bd/util.h"
#include "dbtest.h"

/* ---- a reproducible generator (splitmix64) ---------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int pick(int n) { return (int)(rnd() % (uint64_t)n); }
static int chance(int percent) { return pick(100) < percent; }

static void rnd_uuid(char out[37])
{
    uint64_t a = rnd(), b = rnd();
    a = (a & ~0xf000ULL) | 0x4000ULL;                 /* version 4 */
    b = (b & ~(3ULL << 62)) | (2ULL << 62);           /* variant 10 */
    snprintf(out, 37, "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
             a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48, b & (uint64_t)0xffffffffffff);
}

/* ---- the world a sequence plays in -------------------------------------------------- */

/* Spellings of one email that some lower() folds together: [1] is the usual lower case,
 * which also serves as a customer id. */
#define N_GROUPS 9
static const char *const EMAILS[N_GROUPS][4] = {
    {"Äb@x.example", "äb@x.example", "ÄB@X.EXAMPLE", "äB@x.example"},
    {"ΣΟΦΙΑΣ@x.example", "σοφιας@x.example", "σοφιασ@x.example", "Σοφιας@x.example"},
    {"İnci@x.example", "i̇nci@x.example", "inci@x.example", "INCI@x.example"},
    {"Straße@x.example", "straße@x.example", "STRASSE@x.example", "STRAẞE@x.example"},
    {"Bob@x.example", "bob@x.example", "BOB@X.EXAMPLE", "bOb@x.example"},
    {"\xe2\x84\xaa" "ai@x.example", "kai@x.example", "KAI@x.example", "Kai@x.example"}, /* Kelvin sign */
    {"Ǆemal@x.example", "ǆemal@x.example", "ǅemal@x.example", "DŽemal@x.example"},
    {"\xe2\x84\xa6" "mega@x.example", "ωmega@x.example", "ΩMEGA@x.example", "Ωmega@x.example"}, /* Ohm sign */
    {"Öl@x.example", "öl@x.example", "ÖL@x.example", "oL@x.example"},
};

static const char *const COMPANIES[] = {"co-a", "co-b"};
static const char *const LOCATIONS[2][3] = {{"a1", "a2", "a3"}, {"b1", "b2", "b3"}};
static const char *const NAMES[] = {"Ann", "Émile", "Σοφία", "Ünal"};

static const char *email_variant(int g) { return EMAILS[g][pick(4)]; }

/* An id to name a customer by: a pre-made one, an email-shaped one, or nobody's. */
static void rnd_customer_id(char *out, size_t cap)
{
    int r = pick(10);
    if (r < 4)
        snprintf(out, cap, "p%d", pick(N_GROUPS));
    else if (r < 9)
        snprintf(out, cap, "%s", EMAILS[pick(N_GROUPS)][chance(80) ? 1 : pick(4)]);
    else
        snprintf(out, cap, "ghost");
}

static int rnd_company(void)
{
    int r = pick(100);
    return r < 70 ? 0 : r < 96 ? 1 : -1; /* -1: unknown company */
}

static const char *company_name(int co) { return co < 0 ? "co-x" : COMPANIES[co]; }

struct seq {
    char shop[16];
    char key[40];       /* shop/company key of the commands */
    struct dbt_batch setup;
    struct dbt_batch *batches;
    size_t n_batches;
    int seats[2];       /* the companies' seat counts set after the setup (-1: left) */
    char **sent;        /* every command message sent, in order (for resends) */
    enum b2bd_topic *sent_topic;
    size_t n_sent, cap_sent;
};

static const char *const ACTORS[] = {"staff:42", "import:Zoë", "svc"};

/* Set while a burst of dry runs is made (rnd_command). */
static int dry_burst;

/* A command; some carry an actor, an issued_at or both (stored in the inbox, written
 * into access events and access_history); some of those that have dry runs are dry runs
 * (CONTRACT "Trace context and dry runs": judged without the others, then undone). */
static char *dump_command(const char *type, const char *shop, const char *id, json_t *payload)
{
    json_t *m = json_pack("{sssssssO}", "command_id", id, "type", type, "shop_id", shop,
                          "payload", payload);
    if ((strcmp(type, "assign") == 0 || strcmp(type, "revoke") == 0 || strcmp(type, "suspend") == 0 ||
         strcmp(type, "resume") == 0) && (dry_burst || chance(10)))
        json_object_set_new(m, "dry_run", json_true());
    if (chance(40))
        json_object_set_new(m, "actor", json_string(ACTORS[pick(3)]));
    if (chance(30)) {
        char at[32];
        snprintf(at, sizeof at, "2026-11-%02dT10:%02d:00Z", 1 + pick(28), pick(60));
        json_object_set_new(m, "issued_at", json_string(at));
    }
    char *s = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (!s)
        abort();
    return s;
}

static json_t *rnd_locations(int co)
{
    json_t *a = json_array();
    if (co < 0) {
        json_array_append_new(a, json_pack("{ssss}", "location_id", "a1", "role", "ordering_only"));
        return a;
    }
    int n = pick(3);
    int first = pick(3);
    for (int k = 0; k < n; k++) {
        const char *loc = chance(4) ? "zz" : LOCATIONS[co][(first + k) % 3];
        json_array_append_new(a, json_pack("{ssss}", "location_id", loc, "role",
                                           chance(60) ? "ordering_only" : "location_admin"));
    }
    return a;
}

static json_t *rnd_assign(void)
{
    int co = rnd_company();
    json_t *cust = json_object();
    int how = pick(10);
    char id[64];
    if (how < 3 || how == 9) {
        rnd_customer_id(id, sizeof id);
        json_object_set_new(cust, "id", json_string(id));
    }
    if (how >= 3) {
        json_object_set_new(cust, "email", json_string(email_variant(pick(N_GROUPS))));
        if (chance(50))
            json_object_set_new(cust, "first_name", json_string(NAMES[pick(4)]));
        if (chance(20))
            json_object_set_new(cust, "last_name", json_string("Lee"));
    }
    return json_pack("{sssoso}", "company_id", company_name(co), "customer", cust,
                     "locations", rnd_locations(co));
}

static json_t *rnd_revoke(void)
{
    int co = rnd_company();
    char id[64];
    rnd_customer_id(id, sizeof id);
    json_t *p = json_pack("{ssss}", "company_id", company_name(co), "customer_id", id);
    int scope = pick(3);
    if (scope == 0) {
        json_object_set_new(p, "scope", json_string("company"));
        if (chance(30))
            json_object_set_new(p, "remove_migrated_orders", json_true());
    } else if (scope == 1) {
        json_object_set_new(p, "scope", json_string("all_locations"));
    } else {
        json_object_set_new(p, "scope", json_string("locations"));
        json_t *locs = json_array();
        int c = co < 0 ? 0 : co;
        json_array_append_new(locs, json_string(LOCATIONS[c][pick(3)]));
        if (chance(40))
            json_array_append_new(locs, json_string(LOCATIONS[c][(pick(2) + 1) % 3]));
        json_object_set_new(p, "location_ids", locs);
    }
    return p;
}

/* suspend or resume (CONTRACT.md, "Suspension"): a company, or one of its contacts (or a
 * customer who is none, or unknown), so that the assigns and revokes around it meet
 * suspended companies and contacts. */
static json_t *rnd_suspend(void)
{
    json_t *p = json_pack("{ss}", "company_id", company_name(rnd_company()));
    if (chance(50)) {
        char id[64];
        rnd_customer_id(id, sizeof id);
        json_object_set_new(p, "customer_id", json_string(id));
    }
    return p;
}

static void seq_remember(struct seq *s, enum b2bd_topic t, char *msg)
{
    if (s->n_sent == s->cap_sent) {
        s->cap_sent = s->cap_sent ? s->cap_sent * 2 : 32;
        s->sent = realloc(s->sent, s->cap_sent * sizeof *s->sent);
        s->sent_topic = realloc(s->sent_topic, s->cap_sent * sizeof *s->sent_topic);
        if (!s->sent || !s->sent_topic)
            abort();
    }
    s->sent[s->n_sent] = msg;
    s->sent_topic[s->n_sent++] = t;
}

/* Appends n commands of type to batch b (and remembers them), each with a fresh id and
 * a payload made by make. */
static void seq_burst(struct seq *s, struct dbt_batch *b, const char *type, enum b2bd_topic t,
                      json_t *(*make)(void), int n)
{
    for (int k = 0; k < n; k++) {
        char id[37];
        rnd_uuid(id);
        json_t *q = make();
        char *msg = dump_command(type, s->shop, id, q);
        json_decref(q);
        dbt_batch_add(b, t, 0, s->key, msg);
        seq_remember(s, t, msg);
    }
}

/* Appends one random command to batch b (and remembers it). */
static void rnd_command(struct seq *s, struct dbt_batch *b)
{
    char id[37];
    rnd_uuid(id);
    int r = pick(100);
    enum b2bd_topic t;
    char *msg;
    if (r < 12 && s->n_sent > 0) {
        /* sent again as it was: a duplicate (or, if it was rejected, evaluated afresh) */
        size_t k = (size_t)pick((int)s->n_sent);
        t = s->sent_topic[k];
        msg = strdup(s->sent[k]);
        if (!msg)
            abort();
    } else if (r < 16 && s->n_sent > 0) {
        /* an earlier assign's command_id with another payload */
        size_t k = (size_t)pick((int)s->n_sent);
        json_t *old = json_loads(s->sent[k], 0, NULL);
        json_t *p = rnd_assign();
        msg = dump_command("assign", s->shop, json_string_value(json_object_get(old, "command_id")), p);
        json_decref(old);
        json_decref(p);
        t = TOPIC_ASSIGN;
    } else if (r < 20) {
        /* an email changes (or not): the customer's spelling moves within its group */
        int g = pick(N_GROUPS);
        char cid[64];
        snprintf(cid, sizeof cid, "p%d", g);
        json_t *p = json_pack("{ssss}", "customer_id", chance(50) ? cid : EMAILS[g][1],
                              "email", email_variant(g));
        msg = dump_command("customer.upsert", s->shop, id, p);
        json_decref(p);
        t = TOPIC_SYNC;
    } else if (r < 34) {
        json_t *p = rnd_revoke();
        msg = dump_command("revoke", s->shop, id, p);
        json_decref(p);
        t = TOPIC_REVOKE;
        if (chance(30)) {
            /* a burst of revokes (a location's clean-up): a run for b2bd_revoke_bulk */
            seq_burst(s, b, "revoke", TOPIC_REVOKE, rnd_revoke, 1 + pick(4));
        }
    } else if (r < 44) {
        const char *type = chance(60) ? "suspend" : "resume";
        json_t *p = rnd_suspend();
        msg = dump_command(type, s->shop, id, p);
        json_decref(p);
        t = TOPIC_REVOKE;
    } else {
        /* now and then a burst of dry-run assigns (an import tried first): a run of them
         * for b2bd_assign_bulk, each judged without the others (seats included) */
        int burst = chance(12) ? 2 + pick(5) : 0;
        dry_burst = burst > 0;
        seq_burst(s, b, "assign", TOPIC_ASSIGN, rnd_assign, burst);
        json_t *p = rnd_assign();
        msg = dump_command("assign", s->shop, id, p);
        dry_burst = 0;
        json_decref(p);
        t = TOPIC_ASSIGN;
    }
    dbt_batch_add(b, t, 0, s->key, msg);
    seq_remember(s, t, msg);
}

/* A sequence of shop `shop` whose setup creates the two companies. */
static void seq_init(struct seq *s, const char *shop)
{
    memset(s, 0, sizeof *s);
    snprintf(s->shop, sizeof s->shop, "%s", shop);
    snprintf(s->key, sizeof s->key, "%s/co-a", s->shop);
    s->seats[0] = s->seats[1] = -1;
    char id[37];
    for (int co = 0; co < 2; co++) {
        json_t *locs = json_array();
        for (int l = 0; l < 3; l++)
            json_array_append_new(locs, json_pack("{ssss}", "location_id", LOCATIONS[co][l],
                                                  "name", LOCATIONS[co][l]));
        json_t *p = json_pack("{ssssso}", "company_id", COMPANIES[co], "name", COMPANIES[co],
                              "locations", locs);
        rnd_uuid(id);
        char *m = dump_command("company.upsert", s->shop, id, p);
        dbt_batch_add(&s->setup, TOPIC_SYNC, 0, s->key, m);
        free(m);
        json_decref(p);
    }
}

static struct dbt_batch *seq_new_batch(struct seq *s)
{
    s->batches = realloc(s->batches, (s->n_batches + 1) * sizeof *s->batches);
    if (!s->batches)
        abort();
    struct dbt_batch *b = &s->batches[s->n_batches++];
    memset(b, 0, sizeof *b);
    return b;
}

/* Adds a command with a fresh id to b (or, b NULL, to the setup). */
static void seq_add(struct seq *s, struct dbt_batch *b, enum b2bd_topic t, const char *type,
                    const char *payload)
{
    char id[37];
    rnd_uuid(id);
    json_t *p = json_loads(payload, 0, NULL);
    if (!p)
        abort();
    char *msg = dump_command(type, s->shop, id, p);
    json_decref(p);
    dbt_batch_add(b ? b : &s->setup, t, 0, s->key, msg);
    if (b)
        seq_remember(s, t, msg);
    else
        free(msg);
}

static void seq_build(struct seq *s, unsigned index)
{
    char shop[16], id[37];
    snprintf(shop, sizeof shop, "d%u", index);
    seq_init(s, shop);
    /* some customers exist before: by a plain id or by an email-shaped one; an
     * email-shaped id may hold another email (then an assign by that email conflicts) */
    for (int g = 0; g < N_GROUPS; g++) {
        int r = pick(10);
        if (r < 5)
            continue;
        char cid[64];
        char other[64];
        snprintf(cid, sizeof cid, "p%d", g);
        snprintf(other, sizeof other, "other%d@x.example", g);
        json_t *p = json_pack("{ssss}", "customer_id", r < 8 ? cid : EMAILS[g][1],
                              "email", r == 9 ? other : email_variant(g));
        rnd_uuid(id);
        char *m = dump_command("customer.upsert", s->shop, id, p);
        dbt_batch_add(&s->setup, TOPIC_SYNC, 0, s->key, m);
        free(m);
        json_decref(p);
    }
    int n = 4 + pick(40);
    while (n > 0) {
        int size = 1 + pick(chance(70) ? 25 : 4);
        if (size > n)
            size = n;
        struct dbt_batch *b = seq_new_batch(s);
        for (int k = 0; k < size; k++)
            rnd_command(s, b);
        n -= size;
    }
    /* companies near their limit */
    for (int co = 0; co < 2; co++)
        if (chance(co == 0 ? 60 : 30))
            s->seats[co] = 10000 - pick(5);
}

/* The cases that issue 12 reported, as runs of three plain assigns (one run each):
 * an email whose case only a Unicode lower() folds creates the customer that the next
 * command names by id; a customer named by id, then by email, with one seat left. */
static void fixed_cases(struct seq s[2])
{
    seq_init(&s[0], "fa");
    struct dbt_batch *b = seq_new_batch(&s[0]);
    seq_add(&s[0], b, TOPIC_ASSIGN, "assign",
            "{\"company_id\":\"co-a\",\"customer\":{\"email\":\"Äb@x.example\"},\"locations\":[]}");
    seq_add(&s[0], b, TOPIC_ASSIGN, "assign",
            "{\"company_id\":\"co-a\",\"customer\":{\"id\":\"äb@x.example\"},"
            "\"locations\":[{\"location_id\":\"a1\",\"role\":\"ordering_only\"}]}");
    seq_add(&s[0], b, TOPIC_ASSIGN, "assign",
            "{\"company_id\":\"co-b\",\"customer\":{\"email\":\"Bob@x.example\"},\"locations\":[]}");

    seq_init(&s[1], "fb");
    seq_add(&s[1], NULL, TOPIC_SYNC, "customer.upsert", "{\"customer_id\":\"p1\",\"email\":\"u1@x.example\"}");
    seq_add(&s[1], NULL, TOPIC_SYNC, "customer.upsert", "{\"customer_id\":\"p2\",\"email\":\"u2@x.example\"}");
    s[1].seats[0] = 9999;
    b = seq_new_batch(&s[1]);
    seq_add(&s[1], b, TOPIC_ASSIGN, "assign",
            "{\"company_id\":\"co-a\",\"customer\":{\"id\":\"p1\"},"
            "\"locations\":[{\"location_id\":\"a1\",\"role\":\"ordering_only\"}]}");
    seq_add(&s[1], b, TOPIC_ASSIGN, "assign",
            "{\"company_id\":\"co-a\",\"customer\":{\"email\":\"U1@x.example\"},"
            "\"locations\":[{\"location_id\":\"a2\",\"role\":\"location_admin\"}]}");
    seq_add(&s[1], b, TOPIC_ASSIGN, "assign",
            "{\"company_id\":\"co-a\",\"customer\":{\"id\":\"p2\"},\"locations\":[]}");
}

static void seq_free(struct seq *s)
{
    dbt_batch_free(&s->setup);
    for (size_t i = 0; i < s->n_batches; i++)
        dbt_batch_free(&s->batches[i]);
    free(s->batches);
    for (size_t i = 0; i < s->n_sent; i++)
        free(s->sent[i]);
    free(s->sent);
    free(s->sent_topic);
}

/* ---- comparing ---------------------------------------------------------------------- */

/* Everything a sequence left, one line each, in a fixed order: the outbox (results and
 * access events without their ids and times), the shop's rows. */
static const char SQL_DUMP[] =
    "SELECT concat_ws(E'\\n',"
    " (SELECT string_agg(o.topic || ' ' || convert_from(o.key, 'UTF8') || ' ' ||"
    "   (convert_from(o.value, 'UTF8')::jsonb - '{event_id,processed_at,occurred_at}'::text[])::text,"
    "   E'\\n' ORDER BY o.id) FROM outbox o),"
    " (SELECT string_agg('customer ' || row(u.shop_id, u.customer_id, u.email, u.first_name, u.last_name,"
    "   u.phone, u.access_version)::text, E'\\n' ORDER BY u.shop_id COLLATE \"C\", u.customer_id COLLATE \"C\")"
    "  FROM customers u WHERE u.shop_id = ANY ($1::text[])),"
    " (SELECT string_agg('contact ' || row(k.shop_id, k.company_id, k.customer_id, k.suspended)::text, E'\\n'"
    "   ORDER BY k.shop_id COLLATE \"C\", k.company_id COLLATE \"C\", k.customer_id COLLATE \"C\")"
    "  FROM contacts k WHERE k.shop_id = ANY ($1::text[])),"
    " (SELECT string_agg('role ' || row(r.shop_id, r.company_id, r.customer_id, r.location_id, r.role)::text,"
    "   E'\\n' ORDER BY r.shop_id COLLATE \"C\", r.company_id COLLATE \"C\", r.customer_id COLLATE \"C\","
    "   r.location_id COLLATE \"C\") FROM roles r WHERE r.shop_id = ANY ($1::text[])),"
    " (SELECT string_agg('company ' || row(c.shop_id, c.company_id, c.contact_count, c.suspended)::text, E'\\n'"
    "   ORDER BY c.shop_id COLLATE \"C\", c.company_id COLLATE \"C\") FROM companies c WHERE c.shop_id = ANY ($1::text[])),"
    " (SELECT string_agg('command ' || row(m.command_id, m.type, m.payload_hash, m.import_id,"
    "   m.actor, m.issued_at, (m.result::jsonb - '{event_id,processed_at}'::text[])::text)::text, E'\\n'"
    "   ORDER BY m.command_id) FROM commands m WHERE m.shop_id = ANY ($1::text[])),"
    " (SELECT string_agg('history ' || row(h.shop_id, h.customer_id, h.version, h.companies, h.caused_by,"
    "   h.actor)::text, E'\\n' ORDER BY h.shop_id COLLATE \"C\", h.customer_id COLLATE \"C\", h.version)"
    "  FROM access_history h WHERE h.shop_id = ANY ($1::text[])))";

static char *world_dump(struct dbt_world *w, const char *shops)
{
    const char *v[] = {shops};
    char *s = dbt_sql_value(w, SQL_DUMP, 1, v);
    PQclear(dbt_sql(w, "DELETE FROM outbox", 0, NULL));
    return s;
}

/* Prints the first line where a and b differ. */
static void print_first_difference(const char *a, const char *b)
{
    int line = 1;
    const char *la = a, *lb = b;
    while (*la || *lb) {
        const char *ea = strchr(la, '\n'), *eb = strchr(lb, '\n');
        size_t na = ea ? (size_t)(ea - la) : strlen(la), nb = eb ? (size_t)(eb - lb) : strlen(lb);
        if (na != nb || memcmp(la, lb, na) != 0) {
            fprintf(stderr, "first difference at line %d:\n  bulk on:  %.*s\n  bulk off: %.*s\n",
                    line, (int)na, la, (int)nb, lb);
            return;
        }
        la += na + (ea ? 1 : 0);
        lb += nb + (eb ? 1 : 0);
        line++;
    }
}

static void print_sequence(const struct seq *s)
{
    fprintf(stderr, "the sequence's commands, in batches:\n");
    for (size_t i = 0; i < s->n_batches; i++) {
        fprintf(stderr, "-- batch %zu\n", i + 1);
        for (size_t k = 0; k < s->batches[i].n; k++)
            fprintf(stderr, "%.*s\n", (int)s->batches[i].msgs[k].value_len,
                    (const char *)s->batches[i].msgs[k].value);
    }
}

/* ---- the test ----------------------------------------------------------------------- */

struct pair {
    const char *name;
    const char *create_opts;
    struct dbt_world on, off;
};

static int64_t ms_on, ms_off; /* time spent in apply_batch, per world */

static void apply_both(struct pair *p, const struct dbt_batch *b)
{
    int64_t t0 = util_now_ms();
    dbt_apply(&p->on, b);
    int64_t t1 = util_now_ms();
    dbt_apply(&p->off, b);
    ms_on += t1 - t0;
    ms_off += util_now_ms() - t1;
}

static void set_seats(struct dbt_world *w, const char *shop, const char *company, int seats)
{
    char n[16];
    snprintf(n, sizeof n, "%d", seats);
    const char *v[] = {shop, company, n};
    PQclear(dbt_sql(w, "UPDATE companies SET contact_count = $3::int WHERE shop_id = $1 AND company_id = $2",
                    3, v));
}

/* Plays a group of sequences: their setups in one batch, then round r applies batch r
 * of each sequence, one after the other, in one batch (the shops never meet, but the
 * runs of plain assigns may span them). Returns 0 when both worlds agree; else prints
 * what differs, under the title what. */
static int run_group(struct pair *p, struct seq *s, unsigned n, const char *what)
{
    struct dbt_batch b = {0};
    struct sbuf shops = {0};
    size_t rounds = 0;
    sbuf_adds(&shops, "{");
    for (unsigned k = 0; k < n; k++) {
        for (size_t i = 0; i < s[k].setup.n; i++) {
            const struct b2bd_msg *m = &s[k].setup.msgs[i];
            dbt_batch_add(&b, m->topic, 0, s[k].key, m->value);
        }
        if (s[k].n_batches > rounds)
            rounds = s[k].n_batches;
        sbuf_addf(&shops, "%s%s", k ? "," : "", s[k].shop);
    }
    sbuf_adds(&shops, "}");
    apply_both(p, &b);
    for (unsigned k = 0; k < n; k++) {
        for (int co = 0; co < 2; co++) {
            if (s[k].seats[co] >= 0) {
                set_seats(&p->on, s[k].shop, COMPANIES[co], s[k].seats[co]);
                set_seats(&p->off, s[k].shop, COMPANIES[co], s[k].seats[co]);
            }
        }
    }
    for (size_t r = 0; r < rounds; r++) {
        dbt_batch_clear(&b);
        for (unsigned k = 0; k < n; k++) {
            if (r >= s[k].n_batches)
                continue;
            for (size_t i = 0; i < s[k].batches[r].n; i++) {
                const struct b2bd_msg *m = &s[k].batches[r].msgs[i];
                dbt_batch_add(&b, m->topic, 0, s[k].key, m->value);
            }
        }
        apply_both(p, &b);
    }
    dbt_batch_free(&b);
    char *x = world_dump(&p->on, sbuf_str(&shops)), *y = world_dump(&p->off, sbuf_str(&shops));
    int rc = strcmp(x, y) != 0;
    if (rc) {
        fprintf(stderr, "DIFFERENCE: %s, databases %s\n", what, p->name);
        print_first_difference(x, y);
        for (unsigned k = 0; k < n; k++) {
            fprintf(stderr, "== sequence of shop %s\n", s[k].shop);
            print_sequence(&s[k]);
        }
    }
    free(x);
    free(y);
    sbuf_free(&shops);
    return rc;
}

/* Plays random group g of the seed. */
static int play(struct pair *p, unsigned g, unsigned per_group, uint64_t seed)
{
    rng_state = seed ^ ((uint64_t)(g + 1) * 0xd1342543de82ef95ULL);
    struct seq *s = calloc(per_group, sizeof *s);
    if (!s)
        abort();
    for (unsigned k = 0; k < per_group; k++)
        seq_build(&s[k], g * per_group + k);
    char what[160];
    snprintf(what, sizeof what, "seed %" PRIu64 ", group %u (B2BD_DIFF_SEED=%" PRIu64
             " B2BD_DIFF_ONLY=%u B2BD_DIFF_GROUP=%u)", seed, g, seed, g, per_group);
    int rc = run_group(p, s, per_group, what);
    for (unsigned k = 0; k < per_group; k++)
        seq_free(&s[k]);
    free(s);
    return rc;
}

static unsigned long env_ulong(const char *name, unsigned long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoul(v, NULL, 10) : dflt;
}

int main(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = getenv("B2BD_DIFF_SEED") && *getenv("B2BD_DIFF_SEED")
                        ? strtoull(getenv("B2BD_DIFF_SEED"), NULL, 10)
                        : (uint64_t)ts.tv_sec * 1000003u + (uint64_t)ts.tv_nsec;
    unsigned long n = env_ulong("B2BD_DIFF_SEQUENCES", 150);
    unsigned per_group = (unsigned)env_ulong("B2BD_DIFF_GROUP", 10);
    if (per_group == 0)
        per_group = 1;
    log_init(getenv("B2BD_DIFF_VERBOSE") ? LOG_DEBUG : LOG_WARN, stderr);
    const char *only = getenv("B2BD_DIFF_ONLY");
    printf("test_apply_diff: seed %" PRIu64 " (B2BD_DIFF_SEED), %lu sequences in groups of %u\n",
           seed, n, per_group);
    fflush(stdout);

    int64_t t_start = util_now_ms();
    struct pair pairs[] = {
        {.name = "ICU und", .create_opts = "LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C'"},
        {.name = "libc C.utf8", .create_opts = "LOCALE 'C.utf8'"},
        {.name = "C", .create_opts = "LOCALE 'C'"},
    };
    size_t n_pairs = sizeof pairs / sizeof pairs[0];
    char names[6][64];
    for (size_t i = 0; i < n_pairs; i++) {
        snprintf(names[2 * i], 64, "b2bd_diff_%d_%zu_on", (int)getpid(), i);
        snprintf(names[2 * i + 1], 64, "b2bd_diff_%d_%zu_off", (int)getpid(), i);
        dbt_create_db(names[2 * i], pairs[i].create_opts);
        dbt_clone_db(names[2 * i + 1], names[2 * i]);
        dbt_world_open(&pairs[i].on, names[2 * i], "on");
        dbt_world_open(&pairs[i].off, names[2 * i + 1], "off");
    }

    printf("test_apply_diff: databases ready in %lld ms\n", (long long)(util_now_ms() - t_start));
    int failed = 0;
    unsigned long played = 0;
    int64_t t0 = util_now_ms();
    /* the reported cases first, in every pair of databases */
    const char *fixed_env = getenv("B2BD_DIFF_FIXED");
    int fixed_on = !(fixed_env && strcmp(fixed_env, "0") == 0) && !(only && *only);
    for (size_t i = 0; i < n_pairs && fixed_on && !failed; i++) {
        struct seq fixed[2];
        rng_state = seed;
        fixed_cases(fixed);
        failed = run_group(&pairs[i], fixed, 2, "the cases of issue 12");
        seq_free(&fixed[0]);
        seq_free(&fixed[1]);
    }
    unsigned long groups = (n + per_group - 1) / per_group;
    for (unsigned long g = 0; g < groups && !failed; g++) {
        if (only && *only && strtoul(only, NULL, 10) != g)
            continue;
        failed = play(&pairs[g % n_pairs], (unsigned)g, per_group, seed);
        played += per_group;
    }
    struct apply_stats on = {0}, off = {0};
    for (size_t i = 0; i < n_pairs; i++) {
        apply_stats_add(&on, &pairs[i].on.st);
        apply_stats_add(&off, &pairs[i].off.st);
    }
    printf("test_apply_diff: %lu sequences in %lld ms; bulk on: %lu applied, %lu rejected, "
           "%lu duplicates, %lu dry runs (%lu set-based), %lu settled set-based, %lu runs handed "
           "back; bulk off: %lu applied, %lu rejected, %lu duplicates, %lu dry runs; apply_batch: "
           "%lld ms bulk on, %lld ms bulk off\n",
           played, (long long)(util_now_ms() - t0), on.applied, on.rejected, on.duplicates,
           on.dry_runs, on.bulk_dry_runs, on.bulk_commands, on.bulk_fallbacks, off.applied,
           off.rejected, off.duplicates, off.dry_runs, (long long)ms_on, (long long)ms_off);
    /* the test must exercise the set-based path, or it shows nothing */
    if (!failed && played >= 50 && on.bulk_commands < played) {
        fprintf(stderr, "too few commands settled set-based (%lu): the generator no longer "
                        "makes runs\n", on.bulk_commands);
        failed = 1;
    }
    /* ... dry runs too, set-based and one by one */
    if (!failed && played >= 50 && (on.bulk_dry_runs < played / 5 || on.dry_runs == on.bulk_dry_runs)) {
        fprintf(stderr, "too few dry runs (%lu, %lu of them set-based): the generator no longer "
                        "makes them\n", on.dry_runs, on.bulk_dry_runs);
        failed = 1;
    }
    /* ... and the "off" databases none of it, or the test compares a path with itself */
    if (!failed && (off.bulk_commands != 0 || off.bulk_fallbacks != 0)) {
        fprintf(stderr, "bulk off settled %lu commands set-based and handed back %lu runs: "
                        "the setting was not honoured\n", off.bulk_commands, off.bulk_fallbacks);
        failed = 1;
    }
    for (size_t i = 0; i < n_pairs; i++) {
        dbt_world_close(&pairs[i].on);
        dbt_world_close(&pairs[i].off);
    }
    for (size_t i = 0; i < 2 * n_pairs; i++) {
        if (failed && getenv("B2BD_DIFF_KEEP"))
            printf("test_apply_diff: kept database %s\n", names[i]);
        else
            dbt_drop_db(names[i]);
    }
    printf("test_apply_diff: %s\n", failed ? "FAILED" : "ok");
    return failed ? 1 : 0;
}
