// Records as Redis hash fields (HSET argv pairs / HGETALL replies). The mapping, written down in
// proto/README.md: strings as they are, integers as decimal strings, env as JSON object text,
// null as an absent field. The record's name or id is the key, not a field.
#pragma once

#include "dp/core/error.hpp"
#include "dp/proto/types.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dp::proto {

using hash_fields = std::vector<std::pair<std::string, std::string>>;

// Every non-null field of the record (for HSET; absent fields must be HDEL'd by a full rewrite).
hash_fields to_hash(const project& p);
hash_fields to_hash(const deployment& d);

// From HGETALL project:<name> / deployment:<id>. An empty reply is errc::not_found; a hash
// that does not hold a valid record is errc::protocol, naming the field. Unknown fields are
// ignored.
dp::result<project> project_from_hash(std::string_view name, const hash_fields& fields);
dp::result<deployment> deployment_from_hash(std::string_view id, const hash_fields& fields);

}  // namespace dp::proto
