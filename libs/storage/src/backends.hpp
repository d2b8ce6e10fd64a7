// Backend factories, private to the library.
#pragma once

#include "dp/storage/object_store.hpp"

namespace dp::storage {

dp::result<std::shared_ptr<object_store>> make_file_store(boost::asio::any_io_executor ex,
                                                          std::filesystem::path root,
                                                          const store_options& opts);
dp::result<std::shared_ptr<object_store>> make_s3_store(boost::asio::any_io_executor ex,
                                                        const storage_url& url,
                                                        const dp::aws::credentials& creds,
                                                        const store_options& opts);

// "bytes" first/last resolved against a size; nullopt when unsatisfiable.
std::optional<std::pair<uint64_t, uint64_t>> resolve_range(const byte_range& r, uint64_t size);

// True when an If-None-Match header value matches etag ("*", or a list of tags, W/ ignored).
bool etag_matches(std::string_view if_none_match, std::string_view etag);

}  // namespace dp::storage
