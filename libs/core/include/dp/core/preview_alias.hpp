// The stable alias labels of previews: `<project>--<branch slug>` for a branch and
// `<project>--pr-<n>` for a pull request, next to the immutable `<project>--<short id>` (id.hpp).
//
// Why no two of them, and no project name, can be equal (project names made after the "--"
// rule; older names are guarded by the alias scripts' owner check only):
// - A preview label is `<project>--<suffix>` where the project holds no "--" and does not end
//   with '-', and the suffix does not start with '-': its first "--" ends the project name, so
//   two labels of different projects differ, and no project name (no "--") equals one.
// - Suffixes of one project fall into four disjoint classes:
//     immutable: 8 Crockford base32 characters (no '-')
//     pull request: "pr-<digits>"
//     branch: the slug when it is the branch name itself (lowercase [a-z0-9-] already), holding
//             no "--", neither of the two forms above: one branch per suffix
//     hashed: anything else (a name the slug changed: "Feature", "feature/x"; a slug of an
//             immutable's shape, "pr-<digits>", empty, or too long): `<slug prefix or "b">--
//             <hash of the branch name>`, the only class with "--" in it.
// So `Feature`, `feature` and `feature/x`, `feature-x` get four labels: a slug that lost
// information (case, punctuation) is never used bare. Hashed labels are distinct as far as their
// 35-bit (shorter only for 54-character project names) FNV-1a hashes are.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dp {

// Lowercase, each run of characters outside [a-z0-9] made one '-', no '-' at either end.
std::string branch_slug(std::string_view branch);

// The DNS label (at most 63 characters) of a branch's preview: `<project>--<slug>` when the slug
// is the branch name, or the hashed form when the slug changed the name, could be read as another
// class or does not fit.
std::string branch_alias(std::string_view project, std::string_view branch);

// `<project>--pr-<n>` (hashed when it does not fit: a 54-character name and n over 9999).
std::string pull_request_alias(std::string_view project, int64_t number);

}  // namespace dp
