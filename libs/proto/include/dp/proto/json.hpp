// JSON for the types in types.hpp: boost::json::value_from conversions, strict parsers and the
// fast log-event serializer. Parsers refuse a missing required field, a wrong type, an unknown
// version or a bad enum value with an error naming the field path ("field 'env.FOO' must be a
// string"); unknown extra fields are accepted so that newer writers do not break older readers.
#pragma once

#include "dp/core/error.hpp"
#include "dp/proto/types.hpp"

#include <boost/json/fwd.hpp>

#include <string>
#include <string_view>
#include <variant>

namespace dp::proto {

// Found by boost::json::value_from through argument-dependent lookup.
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const job& x);
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const log_event& x);
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const project& x);
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const deployment& x);
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const build_settings& x);
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const manifest_entry& x);
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const manifest& x);
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const status_event& x);
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const alias_event& x);
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const route_event& x);
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const cancel_request& x);

// Serialized JSON text (serialize(value_from(x)), except log_event: see append_json).
std::string to_json(const job& x);
std::string to_json(const log_event& x);
std::string to_json(const project& x);
std::string to_json(const deployment& x);
std::string to_json(const manifest& x);
std::string to_json(const status_event& x);
std::string to_json(const alias_event& x);
std::string to_json(const route_event& x);
std::string to_json(const cancel_request& x);

// The hot path (one call per build output line): appends the event's JSON to `out` without
// building a boost::json::value. Invalid UTF-8 becomes U+FFFD, as value_from does.
void append_json(std::string& out, const log_event& x);

// Events on the events:deployments channel, told apart by their "type".
using deployment_event = std::variant<status_event, alias_event>;

// Strict parsers, from a parsed value or from JSON text. Errors are errc::invalid_argument.
// (Pass text as std::string or std::string_view: a string literal would also match the value
// overload.)
dp::result<job> parse_job(const boost::json::value& v);
dp::result<job> parse_job(std::string_view text);
dp::result<log_event> parse_log_event(const boost::json::value& v);
dp::result<log_event> parse_log_event(std::string_view text);
dp::result<project> parse_project(const boost::json::value& v);
dp::result<project> parse_project(std::string_view text);
dp::result<deployment> parse_deployment(const boost::json::value& v);
dp::result<deployment> parse_deployment(std::string_view text);
dp::result<manifest> parse_manifest(const boost::json::value& v);
dp::result<manifest> parse_manifest(std::string_view text);
dp::result<status_event> parse_status_event(const boost::json::value& v);
dp::result<status_event> parse_status_event(std::string_view text);
dp::result<alias_event> parse_alias_event(const boost::json::value& v);
dp::result<alias_event> parse_alias_event(std::string_view text);
dp::result<route_event> parse_route_event(const boost::json::value& v);
dp::result<route_event> parse_route_event(std::string_view text);
dp::result<deployment_event> parse_deployment_event(const boost::json::value& v);
dp::result<deployment_event> parse_deployment_event(std::string_view text);
dp::result<cancel_request> parse_cancel_request(const boost::json::value& v);
dp::result<cancel_request> parse_cancel_request(std::string_view text);

}  // namespace dp::proto
