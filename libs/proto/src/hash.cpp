#include "dp/proto/hash.hpp"

#include "dp/proto/json.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>

namespace dp::proto {
namespace json = boost::json;

namespace {

// A hash is the record's JSON object flattened one level: the record's conversions and strict
// parser stay the single definition of the fields, and the hash only changes how values are
// spelled (decimal strings, JSON text for objects, absent for null).
hash_fields flatten(const json::value& record, std::string_view key_field) {
  hash_fields out;
  for (const auto& m : record.get_object()) {
    if (m.key() == key_field) {
      continue;
    }
    const json::value& v = m.value();
    if (v.is_string()) {
      out.emplace_back(m.key(), v.get_string());
    } else if (v.is_int64()) {
      out.emplace_back(m.key(), std::to_string(v.get_int64()));
    } else if (v.is_bool()) {
      out.emplace_back(m.key(), v.get_bool() ? "true" : "false");
    } else if (v.is_object()) {
      out.emplace_back(m.key(), json::serialize(v));
    }
    // null: no field, so that HGETALL never needs a sentinel string
  }
  return out;
}

// The fields stored as JSON object text, and as "true" / "false".
constexpr std::array<std::string_view, 6> object_fields = {"env", "production_env", "preview_env",
                                                           "fork_env", "build_settings",
                                                           "protection"};
constexpr std::array<std::string_view, 4> boolean_fields = {"install_scripts", "cancel_superseded",
                                                            "fork_pull_requests", "fork"};

template <size_t N>
dp::result<json::object> unflatten(std::string_view key_field, std::string_view key,
                                   const hash_fields& fields,
                                   const std::array<std::string_view, N>& integers) {
  auto among = [](const auto& names, std::string_view name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  json::object o;
  o.emplace(key_field, key);
  for (const auto& [name, text] : fields) {
    if (among(boolean_fields, name)) {
      if (text != "true" && text != "false") {
        return make_error(errc::protocol, "hash field '{}' must be true or false", name);
      }
      o[name] = text == "true";
    } else if (among(integers, name)) {
      int64_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
        return make_error(errc::protocol, "hash field '{}' must be a decimal integer", name);
      }
      o[name] = n;
    } else if (among(object_fields, name)) {
      boost::system::error_code ec;
      json::value value = json::parse(text, ec);
      if (ec) {
        return make_error(errc::protocol, "hash field '{}' must be JSON text: {}", name,
                          ec.message());
      }
      o[name] = std::move(value);
    } else {
      o[name] = text;
    }
  }
  return o;
}

// Errors in a stored record are the store's fault, not the caller's: errc::protocol.
template <class T>
dp::result<T> reclassify(dp::result<T> r, std::string_view what, std::string_view key) {
  if (r) {
    return r;
  }
  return make_error(errc::protocol, "{} '{}' in Redis: {}", what, key, r.error().message);
}

constexpr std::array<std::string_view, 3> project_integers = {"created_at", "keep_deployments",
                                                              "keep_production_days"};
constexpr std::array<std::string_view, 11> deployment_integers = {
    "created_at",   "started_at",       "finished_at", "attempt",     "files",       "bytes",
    "source_bytes", "production_until", "pruned_at",   "cache_bytes", "pull_request"};

}  // namespace

hash_fields to_hash(const project& p) {
  return flatten(json::value_from(p), "name");
}
hash_fields to_hash(const deployment& d) {
  return flatten(json::value_from(d), "id");
}

dp::result<project> project_from_hash(std::string_view name, const hash_fields& fields) {
  if (fields.empty()) {
    return make_error(errc::not_found, "project '{}' not found", name);
  }
  auto o = unflatten("name", name, fields, project_integers);
  if (!o) {
    return reclassify(dp::result<project>(o.error()), "project", name);
  }
  return reclassify(parse_project(json::value(std::move(*o))), "project", name);
}

dp::result<deployment> deployment_from_hash(std::string_view id, const hash_fields& fields) {
  if (fields.empty()) {
    return make_error(errc::not_found, "deployment '{}' not found", id);
  }
  auto o = unflatten("id", id, fields, deployment_integers);
  if (!o) {
    return reclassify(dp::result<deployment>(o.error()), "deployment", id);
  }
  return reclassify(parse_deployment(json::value(std::move(*o))), "deployment", id);
}

}  // namespace dp::proto
