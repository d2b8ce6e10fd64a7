// rules_compile <dir>: the compiled site rules of <dir>'s _redirects, _headers and vercel.json
// (dp::siteconfig's JSON form, as the runner uploads it) on stdout, each diagnostic on stderr.
// rules_bench.sh makes its deployment's .site-rules.json with it.
#include <cstdio>

#include "dp/siteconfig/siteconfig.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: rules_compile <directory>\n");
    return 2;
  }
  auto c = dp::siteconfig::compile(argv[1], dp::siteconfig::options{});
  for (const auto& d : c.diagnostics) {
    std::fprintf(stderr, "%s\n", dp::siteconfig::to_string(d).c_str());
  }
  std::fputs(dp::siteconfig::to_json(c.rules).c_str(), stdout);
  return 0;
}
