// Reading the three files safely and compiling them into one indexed rule set.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "detail.hpp"
#include "dp/core/unique_fd.hpp"

namespace dp::siteconfig {

namespace {

// The file's text; nullopt when it is absent or refused (refusals add an error diagnostic).
std::optional<std::string> read_file(int dir_fd, std::string_view name, const options& opt,
                                     std::vector<diagnostic>& diags) {
  detail::diagnostics d{diags, name};
  // O_NOFOLLOW: a symlink is refused, never followed out of the output directory; O_NONBLOCK: a
  // FIFO the build left does not hang the runner.
  unique_fd fd(
      ::openat(dir_fd, std::string(name).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      return std::nullopt;
    }
    if (errno == ELOOP) {
      d.error(0, "is a symbolic link: not read, its rules are not applied");
    } else {
      d.error(
          0, fmt::format("cannot be opened ({}): its rules are not applied", std::strerror(errno)));
    }
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    d.error(0, "is not a regular file: not read, its rules are not applied");
    return std::nullopt;
  }
  auto too_large = [&] {
    d.error(0, fmt::format("is larger than {} bytes: not read, its rules are not applied",
                           opt.max_file_bytes));
  };
  if (static_cast<uint64_t>(st.st_size) > opt.max_file_bytes) {
    too_large();
    return std::nullopt;
  }
  // Read at most one byte past the limit: the file may grow while it is read.
  std::string text(opt.max_file_bytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      d.error(0,
              fmt::format("cannot be read ({}): its rules are not applied", std::strerror(errno)));
      return std::nullopt;
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  if (got > opt.max_file_bytes) {
    too_large();
    return std::nullopt;
  }
  text.resize(got);
  return text;
}

}  // namespace

std::string to_string(const diagnostic& d) {
  std::string_view level = d.level == diagnostic::severity::error ? "error" : "warning";
  if (d.line == 0) {
    return fmt::format("{}: {}: {}", d.file, level, d.message);
  }
  return fmt::format("{}:{}: {}: {}", d.file, d.line, level, d.message);
}

bool rule_set::empty() const noexcept {
  return trailing_slash == trailing_slash_mode::keep && static_redirects.empty() &&
         dynamic_redirects.empty() && header_rules.empty() && protections.empty();
}

void rule_set::index() {
  static_redirect_index.clear();
  static_header_index.clear();
  dynamic_header_rules.clear();
  for (size_t i = 0; i < static_redirects.size(); ++i) {
    static_redirect_index[static_redirects[i].source.static_path()].push_back(
        static_cast<uint32_t>(i));
  }
  for (size_t i = 0; i < header_rules.size(); ++i) {
    header_rule& rule = header_rules[i];
    if (rule.source.capture_count() > 0) {
      auto syn =
          rule.merge == header_merge::join ? detail::syntax::cloudflare : detail::syntax::vercel;
      for (auto& e : rule.set) {
        std::string why;
        auto parts = detail::parse_destination(e.value, rule.source, syn, false, why);
        bool named = parts && std::any_of(parts->begin(), parts->end(),
                                          [](const template_part& t) { return t.capture >= 0; });
        e.parts = named ? std::move(*parts) : std::vector<template_part>{};
      }
    }
    if (rule.source.is_static()) {
      static_header_index[header_rules[i].source.static_path()].push_back(static_cast<uint32_t>(i));
    } else {
      dynamic_header_rules.push_back(static_cast<uint32_t>(i));
    }
  }
}

compiled compile_sources(const sources& in, const options& opt) {
  compiled c;
  // _redirects first, then vercel.json's routes: the rules keep that order (and share the limits).
  if (in.redirects) {
    detail::parse_redirects(*in.redirects, opt, c.rules, {c.diagnostics, detail::redirects_file});
  }
  if (in.headers) {
    detail::parse_headers(*in.headers, opt, c.rules, {c.diagnostics, detail::headers_file});
  }
  if (in.vercel_json) {
    detail::parse_vercel(*in.vercel_json, opt, c.rules, {c.diagnostics, detail::vercel_file});
  }
  c.rules.index();
  return c;
}

compiled compile_at(int output_dir_fd, const options& opt, int project_dir_fd) {
  sources in;
  std::vector<diagnostic> read_errors;
  in.redirects = read_file(output_dir_fd, detail::redirects_file, opt, read_errors);
  in.headers = read_file(output_dir_fd, detail::headers_file, opt, read_errors);
  size_t before = read_errors.size();
  in.vercel_json = read_file(output_dir_fd, detail::vercel_file, opt, read_errors);
  if (!in.vercel_json && read_errors.size() == before && project_dir_fd >= 0) {
    in.vercel_json = read_file(project_dir_fd, detail::vercel_file, opt, read_errors);
  }
  compiled c = compile_sources(in, opt);
  c.diagnostics.insert(c.diagnostics.begin(), read_errors.begin(), read_errors.end());
  return c;
}

compiled compile(const std::filesystem::path& output_dir, const options& opt,
                 const std::optional<std::filesystem::path>& project_dir) {
  auto open_dir = [](const std::filesystem::path& p) {
    return unique_fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  };
  unique_fd out = open_dir(output_dir);
  if (!out) {
    compiled c;
    c.diagnostics.push_back(
        diagnostic{output_dir.string(), 0,
                   fmt::format("the output directory cannot be opened ({})", std::strerror(errno)),
                   diagnostic::severity::error});
    return c;
  }
  unique_fd project;
  if (project_dir) {
    project = open_dir(*project_dir);
  }
  return compile_at(out.get(), opt, project ? project.get() : -1);
}

}  // namespace dp::siteconfig
