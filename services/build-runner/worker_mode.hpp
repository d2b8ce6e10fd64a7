// `build-runner worker`: wiring only (dp::worker makes the launcher from the settings and does
// the work).
#pragma once

#include <string>

#include "dp/settings/settings.hpp"

namespace build_runner {

// Runs the worker (and, with ACME_DIRECTORY_URL and PLATFORM_KEY, the certificate issuer)
// until SIGINT/SIGTERM and its drain. Returns the process's exit code.
int run_worker(const dp::settings::common& common, const dp::settings::build& build,
               const dp::settings::worker_settings& w, const dp::settings::retention& r,
               const dp::settings::acme& acme, const std::string& platform_key_hex,
               const std::string& self_path);

}  // namespace build_runner
