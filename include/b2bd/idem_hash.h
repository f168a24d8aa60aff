/* idem_hash: the idempotency hash of a command. */
#ifndef B2BD_IDEM_HASH_H
#define B2BD_IDEM_HASH_H

#include <jansson.h>

/* SHA-256 of the canonical form (keys sorted, compact) of {type, shop_id, payload};
 * the idempotency hash. Returns 0 on success. */
int decode_hash(const char *type, const char *shop_id, const json_t *payload,
                unsigned char out[32]);

#endif
