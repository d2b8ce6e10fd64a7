#include "dp/core/preview_alias.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "dp/core/id.hpp"

namespace {

bool is_dns_label(const std::string& s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace

TEST(preview_alias, readable_slugs) {
  EXPECT_EQ(dp::branch_slug("feature/Login_Form"), "feature-login-form");
  EXPECT_EQ(dp::branch_slug("--a//b--"), "a-b");
  EXPECT_EQ(dp::branch_alias("shop", "feature-x"), "shop--feature-x");
  EXPECT_EQ(dp::branch_alias("shop", "main"), "shop--main");
  EXPECT_EQ(dp::pull_request_alias("shop", 42), "shop--pr-42");
}

TEST(preview_alias, slugs_of_another_class_are_hashed) {
  // Eight Crockford characters: the shape of an immutable alias's suffix.
  auto a = dp::branch_alias("shop", "deadbeef");
  EXPECT_NE(a, "shop--deadbeef");
  EXPECT_EQ(a.rfind("shop--deadbeef--", 0), 0u) << a;
  // "pr-<n>" belongs to pull requests.
  auto pr = dp::branch_alias("shop", "pr-7");
  EXPECT_NE(pr, dp::pull_request_alias("shop", 7));
  EXPECT_EQ(pr.rfind("shop--pr-7--", 0), 0u) << pr;
  // Nothing readable at all.
  auto empty = dp::branch_alias("shop", "///");
  EXPECT_EQ(empty.rfind("shop--b--", 0), 0u) << empty;
  // Not the shape (a 'u', nine characters): kept readable.
  EXPECT_EQ(dp::branch_alias("shop", "deadbeu1"), "shop--deadbeu1");
  EXPECT_EQ(dp::branch_alias("shop", "deadbeef1"), "shop--deadbeef1");
}

// A slug that lowercased or replaced something is never used bare: the branch it came from
// gets the hashed form, with the slug as its readable prefix.
TEST(preview_alias, slugs_that_lost_information_are_hashed) {
  auto upper = dp::branch_alias("shop", "Feature");
  EXPECT_EQ(upper.rfind("shop--feature--", 0), 0u) << upper;
  EXPECT_NE(upper, dp::branch_alias("shop", "feature"));
  EXPECT_EQ(dp::branch_alias("shop", "feature"), "shop--feature");
  auto slash = dp::branch_alias("shop", "feature/x");
  EXPECT_EQ(slash.rfind("shop--feature-x--", 0), 0u) << slash;
  EXPECT_NE(slash, dp::branch_alias("shop", "feature-x"));
  EXPECT_NE(slash, dp::branch_alias("shop", "Feature/X"));
  EXPECT_NE(dp::branch_alias("shop", "a--b"), dp::branch_alias("shop", "a-b"));
  // The same name gives the same label every time (the alias is stable across pushes).
  EXPECT_EQ(slash, dp::branch_alias("shop", "feature/x"));
}

TEST(preview_alias, long_names_fit_a_dns_label) {
  std::string project(54, 'p');
  std::string branch(200, 'b');
  for (const auto& label :
       {dp::branch_alias(project, branch), dp::branch_alias("a", branch),
        dp::branch_alias(project, "x"), dp::pull_request_alias(project, 1234567890),
        dp::pull_request_alias(project, 9999), dp::branch_alias(project, "deadbeef")}) {
    EXPECT_TRUE(is_dns_label(label)) << label;
  }
  EXPECT_EQ(dp::pull_request_alias(project, 9999), project + "--pr-9999");
  // Two long branches that share their first 200 characters differ by their hash.
  EXPECT_NE(dp::branch_alias("a", branch + "1"), dp::branch_alias("a", branch + "2"));
}

// The classes of one project's suffixes are disjoint, and the project name is recoverable from
// every label: no preview label equals a project name, an immutable alias or another's preview,
// and two different branch names (even ones differing only in case or punctuation) never share
// one.
TEST(preview_alias, collision_free_with_names_and_immutable_aliases) {
  const std::vector<std::string> projects = {
      "a", "ab", "shop", "my-shop", std::string(53, 'q'), std::string(54, 'p')};
  std::vector<std::string> branches = {"main", "feature/x", "deadbeef",  "DEADBEEF",
                                       "pr-1", "PR-1",      "pr/1",      "",
                                       "-",    "b",         "b--0000000"};
  // Every 8-character string over a small alphabet that mixes Crockford and other characters,
  // upper and lower case and punctuation, and long names around each budget.
  const std::string chars = "0aiuA-/_";
  const int n_chars = static_cast<int>(chars.size());
  for (int n = 0; n < n_chars * n_chars * n_chars * n_chars; ++n) {
    std::string s = "zzzz";
    for (int k = 0, m = n; k < 4; ++k, m /= n_chars) {
      s += chars[m % n_chars];
    }
    branches.push_back(s);
    // The same name in another case: "zZzZ...".
    std::string mixed = s;
    mixed[1] = 'Z';
    branches.push_back(mixed);
  }
  for (const char* b : {"Feature", "feature", "FEATURE", "feature/x", "feature-x", "feature_x",
                        "Feature/X", "feature//x", "feature.x", "a--b", "a-b", "a/b"}) {
    branches.push_back(b);
  }
  for (size_t len = 1; len < 70; ++len) {
    branches.push_back(std::string(len, 'x'));
  }
  std::map<std::string, std::string> seen;  // label -> what made it
  auto add = [&](const std::string& label, const std::string& what) {
    ASSERT_TRUE(is_dns_label(label)) << label << " from " << what;
    auto [it, fresh] = seen.emplace(label, what);
    if (!fresh) {
      // Two branches of one project at most, and then only when the project's name is so long
      // that the hash is shorter than 7 characters (53 and 54 characters: 5 and 4).
      auto project = label.substr(0, label.find("--"));
      EXPECT_EQ(it->second.rfind(project + " branch ", 0), 0u) << label << ": " << it->second;
      EXPECT_EQ(what.rfind(project + " branch ", 0), 0u) << label << ": " << what;
      if (project.size() <= 51) {
        EXPECT_EQ(it->second, what) << label;
      }
    }
  };
  for (const auto& p : projects) {
    add(p, p + " name");
    for (int i = 0; i < 300; ++i) {
      std::string id = dp::new_deployment_id();
      add(dp::immutable_alias(p, id), p + " immutable");
    }
    for (int64_t n : {1, 7, 42, 9999, 10000, 123456789}) {
      add(dp::pull_request_alias(p, n), p + " pr");
    }
    for (const auto& b : branches) {
      auto label = dp::branch_alias(p, b);
      add(label, p + " branch " + b);
      // The project name ends at the label's first "--".
      EXPECT_EQ(label.substr(0, label.find("--")), p) << label;
    }
  }
}
