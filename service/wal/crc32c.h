// crc32c: the Castagnoli CRC that guards every log record and snapshot block (the checksum of
// iSCSI, ext4 and most storage engines: it detects any burst of up to 32 flipped bits).
//
//   uint32_t c = wal::crc32c::extend(0, data, size);   // crc of data
//   c = wal::crc32c::extend(c, more, more_size);       // crc of data + more
//
// SSE4.2's crc32 instruction where the CPU has it, a table otherwise; both give the same values
// (tests/service/wal_test.cc checks the standard test vector with each).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shoal::service::wal::crc32c {

// The crc of [data, data + n) continued from `crc` (0 to start).
uint32_t extend(uint32_t crc, const void* data, std::size_t n);
inline uint32_t of(std::string_view s) { return extend(0, s.data(), s.size()); }

// The table version, always (for the test that compares both).
uint32_t extend_portable(uint32_t crc, const void* data, std::size_t n);

}  // namespace shoal::service::wal::crc32c
