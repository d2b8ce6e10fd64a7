// The per-request cost of the rules: match() + headers_for() for a site with no rules, with 100
// static + 20 dynamic redirects and 20 header rules, and with the limits' 2,000 static + 100
// dynamic; then verify() (one PBKDF2) per iteration count. Prints a table; numbers mean something
// in the Release tree (build/release) only.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "dp/siteconfig/siteconfig.hpp"

namespace sc = dp::siteconfig;

namespace {

sc::rule_set site(int statics, int dynamics, int header_rules) {
  sc::sources in;
  std::string r;
  for (int i = 0; i < statics; ++i) {
    r += "/old/page-" + std::to_string(i) + " /new/page-" + std::to_string(i) + " 301\n";
  }
  for (int i = 0; i < dynamics; ++i) {
    r += "/blog-" + std::to_string(i) + "/:year/:slug /posts/:year/:slug 301\n";
  }
  in.redirects = r;
  std::string h;
  for (int i = 0; i < header_rules; ++i) {
    h += (i % 2 ? "/assets-" + std::to_string(i) + "/*" : "/page-" + std::to_string(i)) +
         "\n  X-Rule-" + std::to_string(i) + ": v\n";
  }
  if (header_rules > 0) {
    h += "/*\n  X-Frame-Options: DENY\n";
  }
  in.headers = h;
  return sc::compile_sources(in, {}).rules;
}

double ns_per_request(const sc::rule_set& r, const std::vector<std::string>& paths, int rounds) {
  std::vector<sc::header_field> headers;
  size_t sink = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < rounds; ++i) {
    for (const auto& p : paths) {
      sc::outcome o = sc::match(r, p, "utm=1", false);
      sc::headers_for(r, p, headers);
      sink += o.location.size() + headers.size();
    }
  }
  auto ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  if (sink == 42) {
    std::puts("");
  }
  return ns / (static_cast<double>(rounds) * static_cast<double>(paths.size()));
}

}  // namespace

int main() {
  // Mostly paths no rule names (a site's assets), some static and dynamic hits.
  std::vector<std::string> paths = {
      "/",          "/assets/app.3f2a.js", "/assets/style.css",  "/about",
      "/img/a.png", "/old/page-7",         "/blog-3/2024/hello", "/docs/x/y"};
  std::printf("%-36s %12s\n", "rules", "ns/request");
  struct row {
    const char* name;
    int s, d, h;
  } rows[] = {{"none", 0, 0, 0},
              {"100 static + 20 dynamic, 20 headers", 100, 20, 20},
              {"2000 static + 100 dynamic, 100 headers", 2000, 100, 99}};
  for (const auto& row : rows) {
    sc::rule_set r = site(row.s, row.d, row.h);
    std::printf("%-36s %12.0f\n", row.name, ns_per_request(r, paths, 20000));
  }
  std::printf("\n%-36s %12s\n", "Basic-Auth verify, PBKDF2 iterations", "us/verify");
  for (uint32_t it : {1000u, 10000u, 100000u}) {
    sc::options opt;
    opt.pbkdf2_iterations = it;
    sc::sources in;
    in.headers = "/*\n  Basic-Auth: user:correct-horse\n";
    sc::rule_set r = sc::compile_sources(in, opt).rules;
    const sc::protection_rule* p = sc::protection_for(r, "/");
    int n = it >= 100000 ? 5 : 50;
    auto start = std::chrono::steady_clock::now();
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      ok += sc::verify(*p, "Basic dXNlcjpjb3JyZWN0LWhvcnNl") ? 1 : 0;
    }
    auto us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                  .count() /
              n;
    std::printf("%-36u %12.0f%s\n", it, us, ok == n ? "" : "  (verify failed!)");
  }
}
