#include "dp/proto/hash.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace proto = dp::proto;

namespace {

const std::string* find(const proto::hash_fields& f, std::string_view name) {
  auto it = std::find_if(f.begin(), f.end(), [&](const auto& p) { return p.first == name; });
  return it == f.end() ? nullptr : &it->second;
}

proto::project sample_project() {
  proto::project p;
  p.name = "shop";
  p.git_url = "https://github.com/acme/shop";
  p.production_branch = "main";
  p.root_dir = "";
  p.build_command = "npm run build -- --mode \"prod\"";
  p.env = {{"VITE_API", "https://api.example.com"}, {"QUOTE", "a\"b\nc"}};
  p.created_at = 1763990000000;
  return p;
}

proto::deployment sample_deployment() {
  proto::deployment d;
  d.id = "01jh5k7q3x9m2c8r4t6v0w1y3z";
  d.project = "shop";
  d.status = proto::deployment_status::building;
  d.git_url = "https://github.com/acme/shop";
  d.created_at = 1764000000000;
  d.started_at = 1764000000250;
  d.attempt = 2;
  return d;
}

}  // namespace

TEST(proto_hash, project_round_trip) {
  auto p = sample_project();
  auto fields = proto::to_hash(p);
  EXPECT_EQ(find(fields, "name"), nullptr);  // the key carries the name
  ASSERT_NE(find(fields, "created_at"), nullptr);
  EXPECT_EQ(*find(fields, "created_at"), "1763990000000");
  ASSERT_NE(find(fields, "env"), nullptr);
  EXPECT_EQ(*find(fields, "env"), R"({"QUOTE":"a\"b\nc","VITE_API":"https://api.example.com"})");
  ASSERT_NE(find(fields, "root_dir"), nullptr);
  EXPECT_EQ(*find(fields, "root_dir"), "");             // empty strings are kept
  EXPECT_EQ(find(fields, "install_command"), nullptr);  // null is an absent field
  EXPECT_EQ(*find(fields, "install_scripts"), "true");
  auto back = proto::project_from_hash("shop", fields);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, p);

  p.install_scripts = false;
  fields = proto::to_hash(p);
  EXPECT_EQ(*find(fields, "install_scripts"), "false");
  EXPECT_EQ(proto::project_from_hash("shop", fields).value(), p);
  // Records written before the setting existed run install scripts.
  std::erase_if(fields, [](const auto& f) { return f.first == "install_scripts"; });
  EXPECT_TRUE(proto::project_from_hash("shop", fields).value().install_scripts);
  fields.emplace_back("install_scripts", "yes");
  EXPECT_FALSE(proto::project_from_hash("shop", fields));
}

// Records made before redirects_shadowing read as "files"; a value outside the two is refused.
TEST(proto_hash, redirects_shadowing) {
  auto p = sample_project();
  auto fields = proto::to_hash(p);
  EXPECT_EQ(*find(fields, "redirects_shadowing"), "files");
  p.shadowing = proto::redirects_shadowing::rules;
  fields = proto::to_hash(p);
  EXPECT_EQ(*find(fields, "redirects_shadowing"), "rules");
  EXPECT_EQ(proto::project_from_hash("shop", fields).value(), p);
  std::erase_if(fields, [](const auto& f) { return f.first == "redirects_shadowing"; });
  EXPECT_EQ(proto::project_from_hash("shop", fields).value().shadowing,
            proto::redirects_shadowing::files);
  fields.emplace_back("redirects_shadowing", "cloudflare");
  EXPECT_FALSE(proto::project_from_hash("shop", fields));
}

TEST(proto_hash, deployment_round_trip) {
  auto d = sample_deployment();
  auto fields = proto::to_hash(d);
  EXPECT_EQ(*find(fields, "status"), "building");
  EXPECT_EQ(*find(fields, "attempt"), "2");
  EXPECT_EQ(find(fields, "finished_at"), nullptr);
  EXPECT_EQ(find(fields, "error"), nullptr);
  auto back = proto::deployment_from_hash(d.id, fields);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, d);

  // Every optional set, and an update written by a newer writer (unknown field) is ignored.
  d.status = proto::deployment_status::failed;
  d.ref = "v1.2.0";
  d.commit = "3f9c2a7d1e4b8c6a0f5d2e9b7c1a4d8e6f0b3c5a";
  d.alias = "shop-4t6v0w1y";
  d.finished_at = 1764000009000;
  d.error = "build command exited with status 1";
  d.files = 0;
  d.bytes = 0;
  d.settings = proto::build_settings{.framework = "astro",
                                     .package_manager = "pnpm",
                                     .install_command = {"corepack install -g pnpm@9 && x", false},
                                     .build_command = {"", true},
                                     .output_dir = proto::build_setting{"dist", false}};
  fields = proto::to_hash(d);
  EXPECT_EQ(
      *find(fields, "build_settings"),
      R"({"framework":"astro","package_manager":"pnpm","install_command":{"value":)"
      R"("corepack install -g pnpm@9 && x","source":"detected"},"build_command":)"
      R"({"value":"","source":"project"},"output_dir":{"value":"dist","source":"detected"}})");
  fields.emplace_back("worker", "host-1/3");
  back = proto::deployment_from_hash(d.id, fields);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, d);
}

TEST(proto_hash, refuses_bad_hashes) {
  auto empty = proto::project_from_hash("shop", {});
  ASSERT_FALSE(empty);
  EXPECT_TRUE(empty.error().is(dp::errc::not_found));

  auto fields = proto::to_hash(sample_deployment());
  for (auto& [name, value] : fields) {
    if (name == "created_at") {
      value = "12x";
    }
  }
  auto bad_number = proto::deployment_from_hash("01jh5k7q3x9m2c8r4t6v0w1y3z", fields);
  ASSERT_FALSE(bad_number);
  EXPECT_TRUE(bad_number.error().is(dp::errc::protocol));
  EXPECT_NE(bad_number.error().message.find("'created_at' must be a decimal integer"),
            std::string::npos)
      << bad_number.error().message;

  fields = proto::to_hash(sample_project());
  std::erase_if(fields, [](const auto& f) { return f.first == "git_url"; });
  auto missing = proto::project_from_hash("shop", fields);
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(dp::errc::protocol));
  EXPECT_NE(missing.error().message.find("field 'git_url' is missing"), std::string::npos)
      << missing.error().message;

  fields = proto::to_hash(sample_project());
  for (auto& [name, value] : fields) {
    if (name == "env") {
      value = R"({"A":1})";
    }
  }
  auto bad_env = proto::project_from_hash("shop", fields);
  ASSERT_FALSE(bad_env);
  EXPECT_NE(bad_env.error().message.find("field 'env.A' must be a string"), std::string::npos);

  auto bad_name = proto::project_from_hash("Not A Name", proto::to_hash(sample_project()));
  ASSERT_FALSE(bad_name);
  EXPECT_NE(bad_name.error().message.find("field 'name'"), std::string::npos);

  auto bad_status = proto::to_hash(sample_deployment());
  for (auto& [name, value] : bad_status) {
    if (name == "status") {
      value = "finished";
    }
  }
  auto r = proto::deployment_from_hash("01jh5k7q3x9m2c8r4t6v0w1y3z", bad_status);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("field 'status' must be one of"), std::string::npos);
}
