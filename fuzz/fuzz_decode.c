/* libFuzzer target: the command decoder (decode_command) on every command topic.
 *
 * Input: byte 0 picks the topic ('a' assign, 'r' revoke, 'm' migrate, 'n' notify,
 * 's' sync, 'b' bulk; any other byte: byte % TOPIC_COUNT); the rest is the Kafka
 * message value.
 *
 * Besides the sanitizers, it checks the decoder's promises (decode.h): the outcome and
 * the error code agree, a decoded command has a canonical UUID, a valid shop_id, its
 * type on its topic (any type on the bulk topic), its required fields, NUL-free strings; decoding is deterministic;
 * the re-serialised JSON of a valid command decodes to the same command (same hash);
 * one byte over max_bytes is TOO_LARGE. A broken promise aborts (a crash for libFuzzer). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/decode.h"

#define MAX_BYTES (1024 * 1024)

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_decode: broken promise at line %d: %s\n", __LINE__, \
                    #cond);                                                           \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static enum b2bd_topic pick_topic(uint8_t b)
{
    switch (b) {
    case 'a': return TOPIC_ASSIGN;
    case 'r': return TOPIC_REVOKE;
    case 'm': return TOPIC_MIGRATE;
    case 'n': return TOPIC_NOTIFY;
    case 's': return TOPIC_SYNC;
    case 'b': return TOPIC_BULK;
    default: return (enum b2bd_topic)(b % TOPIC_COUNT);
    }
}

/* A borrowed string: NULL, or NUL-terminated with its length readable (ASan checks it). */
static void str_ok(const char *s)
{
    if (s)
        CHECK(strlen(s) < MAX_BYTES);
}

static void id_ok(const char *s, int required)
{
    if (required)
        CHECK(s != NULL && s[0] != '\0');
    str_ok(s);
    if (s)
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
            CHECK(*p >= 0x20 && *p != 0x7F); /* ids hold no C0 control or DEL */
}

static void check_typed(const struct b2bd_command *c)
{
    switch (c->type) {
    case CMD_ASSIGN: {
        const struct b2bd_assign *a = &c->u.assign;
        id_ok(a->company_id, 1);
        CHECK(a->customer_id || a->email);
        id_ok(a->customer_id, 0);
        if (a->email)
            CHECK(decode_is_email(a->email));
        str_ok(a->first_name), str_ok(a->last_name), str_ok(a->phone);
        for (size_t i = 0; i < a->n_locations; i++) {
            id_ok(a->locations[i].location_id, 1);
            CHECK(a->locations[i].role == ROLE_ORDERING_ONLY
                  || a->locations[i].role == ROLE_LOCATION_ADMIN);
            for (size_t j = 0; j < i; j++)
                CHECK(strcmp(a->locations[i].location_id, a->locations[j].location_id) != 0);
        }
        id_ok(a->migrate_orders_to, 0);
        break;
    }
    case CMD_REVOKE: {
        const struct b2bd_revoke *r = &c->u.revoke;
        id_ok(r->company_id, 1), id_ok(r->customer_id, 1);
        CHECK(r->scope <= SCOPE_COMPANY);
        CHECK(!r->remove_migrated_orders || r->scope == SCOPE_COMPANY);
        for (size_t i = 0; i < r->n_location_ids; i++)
            id_ok(r->location_ids[i], 1);
        break;
    }
    case CMD_SUSPEND:
    case CMD_RESUME:
        id_ok(c->u.suspend.company_id, 1), id_ok(c->u.suspend.customer_id, 0);
        break;
    case CMD_MIGRATE:
        id_ok(c->u.migrate.company_id, 1), id_ok(c->u.migrate.location_id, 1);
        id_ok(c->u.migrate.customer_id, 1);
        break;
    case CMD_NOTIFY: {
        const struct b2bd_notify *n = &c->u.notify;
        id_ok(n->company_id, 1), id_ok(n->location_id, 0);
        for (size_t i = 0; i < n->n_customer_ids; i++)
            id_ok(n->customer_ids[i], 1);
        if (n->staff_email)
            CHECK(decode_is_email(n->staff_email));
        if (n->resend_of)
            CHECK(decode_is_uuid(n->resend_of));
        break;
    }
    case CMD_SHOP_UPSERT:
        CHECK(c->u.shop.name && c->u.shop.name[0]);
        str_ok(c->u.shop.account_url);
        if (c->u.shop.from_email)
            CHECK(decode_is_email(c->u.shop.from_email));
        if (c->u.shop.staff_email)
            CHECK(decode_is_email(c->u.shop.staff_email));
        break;
    case CMD_COMPANY_UPSERT:
        id_ok(c->u.company.company_id, 1);
        CHECK(c->u.company.name && c->u.company.name[0]);
        for (size_t i = 0; i < c->u.company.n_locations; i++) {
            id_ok(c->u.company.locations[i].location_id, 1);
            str_ok(c->u.company.locations[i].name);
        }
        break;
    case CMD_CUSTOMER_UPSERT:
        id_ok(c->u.customer.customer_id, 1);
        CHECK(decode_is_email(c->u.customer.email));
        str_ok(c->u.customer.first_name), str_ok(c->u.customer.last_name);
        str_ok(c->u.customer.phone);
        CHECK(c->u.customer.n_tags <= 250);
        for (size_t i = 0; i < c->u.customer.n_tags; i++)
            str_ok(c->u.customer.tags[i]);
        break;
    case CMD_ORDER_UPSERT: {
        const struct b2bd_order_upsert *o = &c->u.order;
        id_ok(o->order_id, 1), id_ok(o->customer_id, 1);
        CHECK((o->company_id == NULL) == (o->location_id == NULL));
        id_ok(o->company_id, 0), id_ok(o->location_id, 0);
        str_ok(o->placed_at), str_ok(o->total);
        if (o->currency)
            CHECK(strlen(o->currency) == 3);
        CHECK(o->status <= ORDER_DELETED);
        break;
    }
    case CMD_TEMPLATE_UPDATE:
        str_ok(c->u.tmpl.subject), str_ok(c->u.tmpl.text), str_ok(c->u.tmpl.html);
        break;
    case CMD_CUSTOMER_MERGE:
        id_ok(c->u.merge.customer_id, 1), id_ok(c->u.merge.merge_customer_id, 1);
        CHECK(strcmp(c->u.merge.customer_id, c->u.merge.merge_customer_id) != 0);
        break;
    case CMD_CUSTOMER_DATA_REQUEST:
    case CMD_CUSTOMER_REDACT:
        CHECK((c->u.subject.customer_id == NULL) != (c->u.subject.email == NULL));
        id_ok(c->u.subject.customer_id, 0);
        if (c->u.subject.email)
            CHECK(decode_is_email(c->u.subject.email));
        break;
    case CMD_SHOP_REDACT:
        break;
    default:
        CHECK(!"a decoded command of unknown type");
    }
}

static void check_outcome(enum decode_outcome o, const struct b2bd_command *cmd,
                          const struct b2bd_err *err, enum b2bd_topic topic)
{
    CHECK(memchr(err->msg, '\0', sizeof err->msg) && memchr(err->field, '\0', sizeof err->field));
    switch (o) {
    case DECODE_OK:
        CHECK(err->code == B2BD_OK && err->field[0] == '\0');
        CHECK(cmd->root && json_is_object(cmd->root) && json_is_object(cmd->payload));
        CHECK(decode_is_uuid(cmd->command_id) && strlen(cmd->command_id) == 36);
        for (const char *p = cmd->command_id; *p; p++)
            CHECK(*p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
        CHECK(cmd->type != CMD_UNKNOWN &&
              (topic == TOPIC_BULK || decode_type_topic(cmd->type) == topic));
        CHECK(cmd->type_name && strcmp(cmd->type_name, decode_type_name(cmd->type)) == 0);
        CHECK(decode_is_shop_id(cmd->shop_id));
        id_ok(cmd->actor, 0), id_ok(cmd->import_id, 0), str_ok(cmd->issued_at);
        check_typed(cmd);
        break;
    case DECODE_REJECTED:
        CHECK(b2bd_code_is_rejection(err->code) || err->code == B2BD_ERR_INTERNAL);
        CHECK(err->msg[0] != '\0');
        CHECK(decode_is_uuid(cmd->command_id));
        str_ok(cmd->type_name), str_ok(cmd->shop_id);
        break;
    case DECODE_DEAD_LETTER:
        CHECK(b2bd_code_is_dead_letter(err->code));
        CHECK(err->msg[0] != '\0');
        break;
    default:
        CHECK(!"an unknown outcome");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum b2bd_topic topic = pick_topic(data[0]);
    /* A copy of exactly the message's bytes, so that any read past its end is caught. */
    size_t len = size - 1;
    char *msg = malloc(len ? len : 1);
    if (!msg)
        return 0;
    memcpy(msg, data + 1, len);

    struct b2bd_command cmd, again;
    struct b2bd_err err, err2;
    enum decode_outcome o = decode_command(msg, len, MAX_BYTES, topic, &cmd, &err);
    check_outcome(o, &cmd, &err, topic);

    /* Deterministic. */
    enum decode_outcome o2 = decode_command(msg, len, MAX_BYTES, topic, &again, &err2);
    CHECK(o2 == o && err2.code == err.code && strcmp(err2.field, err.field) == 0);
    if (o == DECODE_OK)
        CHECK(memcmp(cmd.hash, again.hash, 32) == 0);
    decode_free(&again);

    /* One byte over the limit: a dead letter before anything is parsed. */
    if (len > 0) {
        o2 = decode_command(msg, len, len - 1, topic, &again, &err2);
        CHECK(o2 == DECODE_DEAD_LETTER && err2.code == B2BD_TOO_LARGE);
        decode_free(&again);
    }

    /* A valid command, serialised again by jansson, is the same command. */
    if (o == DECODE_OK) {
        char *re = json_dumps(cmd.root, JSON_COMPACT);
        if (re) {
            o2 = decode_command(re, strlen(re), MAX_BYTES, topic, &again, &err2);
            CHECK(o2 == DECODE_OK);
            CHECK(strcmp(again.command_id, cmd.command_id) == 0 && again.type == cmd.type);
            CHECK(memcmp(cmd.hash, again.hash, 32) == 0);
            decode_free(&again);
            free(re);
        }
    }
    decode_free(&cmd);
    free(msg);
    return 0;
}
