/* sha256.h — SHA-256 (FIPS 180-4) for content identity: model files, configs, cell keys.
 *
 * No crypto library is among dashkit's dependencies; this is the plain reference algorithm,
 * checked in tests/test_store.c against the FIPS/NIST vectors and against sha256sum(1). */
#ifndef DK_SHA256_H
#define DK_SHA256_H

#include "dk_common.h"
#include <stddef.h>
#include <stdint.h>

#define DK_SHA256_HEX_LEN 64 /* hex digits; buffers are DK_SHA256_HEX_LEN + 1 bytes */

typedef struct {
    uint32_t h[8];    /* chaining state */
    uint64_t n_bytes; /* total message length so far, bytes */
    uint8_t buf[64];  /* pending partial block */
    size_t n_buf;     /* bytes used in buf, < 64 */
} dk_sha256;

void dk_sha256_init(dk_sha256 *s);
void dk_sha256_update(dk_sha256 *s, const void *data, size_t n);
void dk_sha256_final(dk_sha256 *s, uint8_t digest[32]);

/* Lower-case hex of the digest of data[0..n) into hex[65]. */
void dk_sha256_hex(const void *data, size_t n, char hex[DK_SHA256_HEX_LEN + 1]);

/* Lower-case hex digest of a whole file (streamed). DK_ERR_IO naming the path on failure. */
dk_status dk_sha256_file(const char *path, char hex[DK_SHA256_HEX_LEN + 1], dk_err *err);

#endif
