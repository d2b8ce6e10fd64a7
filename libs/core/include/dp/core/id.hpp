// Deployment ids: 128 bits, time-sortable, lowercase, safe in a DNS label.
// Layout (as ULID): 48-bit Unix milliseconds, then 80 random bits, written in lowercase
// Crockford base32 (0-9 a-z without i, l, o, u) as 26 characters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dp {

inline constexpr size_t deployment_id_length = 26;

// A new id for the current time; ids made in the same millisecond by one process still sort
// in creation order (the random part is incremented, as monotonic ULIDs do).
std::string new_deployment_id();
std::string make_deployment_id(uint64_t unix_ms, const uint8_t (&random)[10]);

// True for 26 lowercase Crockford base32 characters whose first character is 0-7.
bool is_deployment_id(std::string_view s) noexcept;

// The part of the id used in the immutable alias: the last 8 characters (40 random bits), so two
// deployments made in the same millisecond still differ.
std::string_view short_id(std::string_view deployment_id) noexcept;

// The immutable alias label of a deployment: `<project>--<short id>`. Project names hold no
// "--", so no project name is ever such a label. A 54-character name (the longest) would make a
// 64-character label, over the DNS limit: it keeps `<project>-<short id>` (63), longer than any
// project name. Deployments made before the "--" scheme keep their stored `<project>-<short>`.
std::string immutable_alias(std::string_view project, std::string_view deployment_id);

// Milliseconds since the epoch encoded in an id (0 when the id is not valid).
uint64_t deployment_id_time_ms(std::string_view deployment_id) noexcept;

// Fills `out` with cryptographically secure random bytes (getrandom(2)).
void secure_random_bytes(void* out, size_t n);

// A random lowercase hex token of `bytes` random bytes (API tokens, temporary names).
std::string random_hex(size_t bytes);

}  // namespace dp
