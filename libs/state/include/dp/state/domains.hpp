// Custom domains: a domain belongs to one project, is proven by its owner before it is routed,
// and carries what the certificate issuer reports.
//
// Keys (proto::keys): domain-record:<fqdn> (hash), project:<name>:domains (set),
// domains (set of every fqdn), and domain:<fqdn> (the alias label the proxy routes), which
// exists only while the domain is verified.
//
//   add(d)            a new pending domain; errc::conflict when the fqdn is any project's already.
//   get(fqdn)         errc::not_found without a record.
//   list(project)     that project's domains, sorted by fqdn.
//   all()             every fqdn (the certificate issuer walks them).
//   remove(fqdn, p)   the record, its indexes and its route; errc::not_found when it is not p's.
//   verify(fqdn, p, by)        pending -> verified and domain:<fqdn> = its alias, in one script;
//                              `by` names the proof ("http" or "txt"); clears a failed check.
//   check_failed(fqdn, p, why) records why the last ownership check failed (state unchanged).
//   set_options(fqdn, p, primary, hsts)  primary=true clears primary on p's other domains.
//   set_branch(fqdn, p, branch)  serve `branch`'s alias ("" for production); a verified
//                              domain's route follows at once.
//   set_certificate(fqdn, status)        what the issuer learned (status, error, retry time).
//   redirect_for(d, project_domains)     pure: the primary a domain's apex/www twin redirects to.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/proto/keys.hpp"

namespace dp::redis {
class client;
}

namespace dp::state {

enum class domain_state { pending, verified };
std::string_view to_string(domain_state s) noexcept;

// Filled by the certificate issuer; empty status means none was attempted yet. The certificate
// itself, its expiry and so its renewal time are the certificate store's (tls::cert_store).
struct certificate_status {
  std::string status;           // "" | "pending" | "issued" | "failed"
  std::string error;            // the last failure's reason, for the user
  int64_t next_attempt_ms = 0;  // after a failure, the retry (backoff) time
  bool operator==(const certificate_status&) const = default;
};

struct domain {
  std::string fqdn;     // lowercase, no trailing dot
  std::string project;  // the owner
  std::string branch;   // "" serves production; else the branch whose alias it serves
  std::string alias;    // the alias label it serves: the project's, or dp::branch_alias's
  std::string token;    // served at http://<fqdn>/.well-known/dp-verify/<token> to prove it
  domain_state state = domain_state::pending;
  bool primary = false;  // the apex/www twin of a primary domain redirects (308) to it
  bool hsts = false;     // Strict-Transport-Security on HTTPS responses
  int64_t created_at_ms = 0;
  int64_t verified_at_ms = 0;
  std::string verified_by;         // "http" | "txt": the proof that passed
  std::string check_error;         // why the last ownership check failed; "" after a pass
  int64_t check_failed_at_ms = 0;  // when it failed
  certificate_status certificate;
  bool operator==(const domain&) const = default;
};

// The alias label a domain of `project` serving `branch` routes to: the project's for "".
std::string domain_alias(std::string_view project, std::string_view branch);
// "www.<d>" for "<d>", "<d>" for "www.<d>".
std::string twin_of(std::string_view fqdn);
// The fqdn `d` redirects to: its twin when that is verified and primary, serves the same alias,
// and `d` is not primary.
std::optional<std::string> redirect_for(const domain& d,
                                        const std::vector<domain>& project_domains);

class domains {
 public:
  domains(redis::client& redis, proto::keys keys);

  boost::asio::awaitable<dp::result<void>> add(const domain& d);
  boost::asio::awaitable<dp::result<domain>> get(std::string_view fqdn);
  boost::asio::awaitable<dp::result<std::vector<domain>>> list(std::string_view project);
  boost::asio::awaitable<dp::result<std::vector<std::string>>> all();
  boost::asio::awaitable<dp::result<void>> remove(std::string_view fqdn, std::string_view project);
  boost::asio::awaitable<dp::result<void>> verify(std::string_view fqdn, std::string_view project,
                                                  std::string_view by = "http");
  boost::asio::awaitable<dp::result<void>> check_failed(std::string_view fqdn,
                                                        std::string_view project,
                                                        std::string_view why);
  boost::asio::awaitable<dp::result<void>> set_branch(std::string_view fqdn,
                                                      std::string_view project,
                                                      std::string_view branch);
  boost::asio::awaitable<dp::result<void>> set_options(std::string_view fqdn,
                                                       std::string_view project,
                                                       std::optional<bool> primary,
                                                       std::optional<bool> hsts);
  boost::asio::awaitable<dp::result<void>> set_certificate(std::string_view fqdn,
                                                           const certificate_status& status);

 private:
  redis::client& redis_;
  proto::keys keys_;
};

}  // namespace dp::state
