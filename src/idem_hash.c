/* idem_hash: the idempotency hash of a command: SHA-256 of the canonical
 * {type, shop_id, payload}. It never changes once commands are stored. */
#include "b2bd/idem_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define HASH_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

/* JSON text of a string value in the canonical form; free() it. */
static char *dump_string(const char *s)
{
    json_t *j = json_string(s);
    char *out = j ? json_dumps(j, HASH_FLAGS | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    return out;
}

int decode_hash(const char *type, const char *shop_id, const json_t *payload,
                unsigned char out[32])
{
    if (!type || !shop_id || !payload)
        return -1;
    /* Exactly what json_dumps(HASH_FLAGS) gives for the object {type, shop_id, payload}:
     * keys sorted, so "payload" < "shop_id" < "type". */
    char *p = json_dumps(payload, HASH_FLAGS | JSON_ENCODE_ANY);
    char *s = dump_string(shop_id), *t = dump_string(type), *all = NULL;
    int rc = -1;
    if (p && s && t
        && asprintf(&all, "{\"payload\":%s,\"shop_id\":%s,\"type\":%s}", p, s, t) >= 0) {
        unsigned int n = 0;
        rc = EVP_Digest(all, strlen(all), out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
        free(all);
    }
    free(p);
    free(s);
    free(t);
    return rc;
}
