// Every directory of tests/fixtures/siteconfig: the documented examples of Cloudflare, Netlify and
// Vercel as files, and an `expect` file of outcomes (its header names the source). Each is checked
// on the compiled rule set and again on the set read back from its JSON.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dp/siteconfig/siteconfig.hpp"

namespace sc = dp::siteconfig;
namespace fs = std::filesystem;

namespace {

fs::path fixtures_dir() {
  if (const char* dir = std::getenv("DP_SOURCE_DIR")) {
    return fs::path(dir) / "tests/fixtures/siteconfig";
  }
  return fs::path(DP_SOURCE_DIR_FALLBACK) / "tests/fixtures/siteconfig";
}

std::optional<std::string> slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    return std::nullopt;
  }
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string describe(const sc::outcome& o) {
  switch (o.type) {
    case sc::outcome::kind::none:
      return "none";
    case sc::outcome::kind::rewrite:
      return "rewrite " + o.location;
    case sc::outcome::kind::redirect:
      return std::to_string(o.status) + " " + o.location;
  }
  return "?";
}

std::string describe_headers(const sc::rule_set& r, std::string_view path) {
  std::vector<sc::header_field> out;
  sc::headers_for(r, path, out);
  if (out.empty()) {
    return "none";
  }
  std::string s;
  for (const auto& f : out) {
    if (!s.empty()) {
      s += " | ";
    }
    s += std::string(f.name) + ": " + f.value;
  }
  return s;
}

void check(const fs::path& dir, const sc::rule_set& rules, const std::vector<std::string>& expect,
           std::string_view form) {
  for (const auto& line : expect) {
    std::string_view l = line;
    size_t arrow = l.find(" -> ");
    ASSERT_NE(arrow, std::string_view::npos) << line;
    std::string_view lhs = l.substr(0, arrow);
    std::string want(l.substr(arrow + 4));
    std::string verb(lhs.substr(0, lhs.find(' ')));
    std::string_view rest = lhs.substr(verb.size() + 1);
    SCOPED_TRACE(dir.filename().string() + " (" + std::string(form) + "): " + line);
    if (verb == "MATCH") {
      bool file = rest.ends_with(" file");
      if (file) {
        rest.remove_suffix(5);
      }
      size_t q = rest.find('?');
      std::string_view path = rest.substr(0, q);
      std::string_view query =
          q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
      EXPECT_EQ(describe(sc::match(rules, path, query, file)), want);
    } else if (verb == "HEADERS") {
      EXPECT_EQ(describe_headers(rules, rest), want);
    } else if (verb == "AUTH") {
      EXPECT_EQ(sc::protection_for(rules, rest) ? "required" : "none", want);
    } else {
      ADD_FAILURE() << "unknown verb " << verb;
    }
  }
}

TEST(SiteconfigFixtures, DocumentedExamples) {
  size_t dirs = 0;
  for (const auto& entry : fs::directory_iterator(fixtures_dir())) {
    auto expect_text = slurp(entry.path() / "expect");
    if (!entry.is_directory() || !expect_text) {
      continue;
    }
    ++dirs;
    sc::options opt;
    std::vector<std::string> expect;
    long want_diagnostics = -1;
    std::istringstream in(*expect_text);
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line.starts_with('#')) {
        continue;
      }
      if (line == "OPTIONS shadowing=rules_win") {
        opt.shadow = sc::shadowing::rules_win;
      } else if (line.starts_with("DIAGNOSTICS ")) {
        want_diagnostics = std::stol(line.substr(12));
      } else {
        expect.push_back(line);
      }
    }
    sc::compiled c = sc::compile(entry.path(), opt);
    std::string diags;
    for (const auto& d : c.diagnostics) {
      diags += sc::to_string(d) + "\n";
    }
    if (want_diagnostics >= 0) {
      EXPECT_EQ(static_cast<long>(c.diagnostics.size()), want_diagnostics) << entry.path() << "\n"
                                                                           << diags;
    }
    check(entry.path(), c.rules, expect, "compiled");
    auto again = sc::parse_rule_set(sc::to_json(c.rules));
    ASSERT_TRUE(again) << again.error().message;
    check(entry.path(), *again, expect, "from JSON");
  }
  EXPECT_GE(dirs, 1u);
}

}  // namespace
