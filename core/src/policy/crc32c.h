/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78, as iSCSI and ext4):
 * the envelope's optional payload checksum. "123456789" -> 0xE3069283. */
#ifndef STRATA_CRC32C_H
#define STRATA_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t strata__crc32c(const void *data, size_t len);

/* The portable table version alone (tests compare it with the above). */
uint32_t strata__crc32c_sw(const void *data, size_t len);

#endif
