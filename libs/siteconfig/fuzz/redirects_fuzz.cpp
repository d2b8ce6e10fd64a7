// libFuzzer target: arbitrary bytes as _redirects.
#include <cstddef>
#include <cstdint>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace sc = dp::siteconfig;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  sc::options opt;
  opt.pbkdf2_iterations = 1;  // hashing is OpenSSL's; the parser around it is what is fuzzed
  sc::sources in;
  in.redirects = std::string(input);
  sc::fuzz::check(sc::compile_sources(in, opt), input);
  return 0;
}
