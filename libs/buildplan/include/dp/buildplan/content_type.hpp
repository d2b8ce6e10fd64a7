// HTTP metadata of a published file, decided once at build time and stored in the manifest.
#pragma once

#include <string_view>

namespace dp::buildplan {

// By extension, case-insensitive; text types carry "; charset=utf-8". Unknown:
// application/octet-stream.
std::string_view content_type(std::string_view path) noexcept;

// True when the file name carries a content hash (index-4f3a9c2b.js, main.3e1f9a7c.css,
// chunk-BqXx1t_a.js, _next/static/...): its content never changes under that name.
bool is_fingerprinted(std::string_view path) noexcept;

inline constexpr std::string_view cache_immutable = "public, max-age=31536000, immutable";
inline constexpr std::string_view cache_revalidate = "public, max-age=0, must-revalidate";

// Immutable for fingerprinted assets; revalidate for everything else, HTML always.
std::string_view cache_control(std::string_view path) noexcept;

}  // namespace dp::buildplan
