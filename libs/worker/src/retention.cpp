#include "dp/worker/retention.hpp"

#include <algorithm>

#include "dp/core/clock.hpp"
#include "dp/core/log.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"

namespace dp::worker {

using proto::deployment_status;

namespace {

constexpr int64_t day_ms = 86'400'000;

// Newest first: ids sort by creation time, created_at breaks nothing they do not.
bool newer(const proto::deployment* a, const proto::deployment* b) {
  return a->created_at != b->created_at ? a->created_at > b->created_at : a->id > b->id;
}

// The manifest first, so that no proxy resolves the site while its files go; then the rest of
// the outputs and the uploaded source. Returns how many objects went.
boost::asio::awaitable<dp::result<int64_t>> remove_files(storage::object_store& store,
                                                         const proto::deployment& d) {
  auto manifest = proto::manifest_key(d.id);
  if (auto r = co_await store.remove(std::move(manifest)); !r) {
    co_return r.error();
  }
  auto prefix = proto::output_prefix(d.id);
  auto removed = co_await store.remove_prefix(std::move(prefix));
  if (!removed) {
    co_return removed.error();
  }
  auto count = static_cast<int64_t>(*removed);
  if (d.git_url.empty()) {
    auto source = proto::source_archive_key(d.id);
    if (auto r = co_await store.remove(std::move(source)); !r) {
      co_return r.error();
    }
    ++count;
  }
  co_return count;
}

// Removes a marked deployment's files and unlists it from retention:pruning.
boost::asio::awaitable<dp::result<int64_t>> finish_pruning(state::records& records,
                                                           storage::object_store& store,
                                                           const proto::deployment& d) {
  auto removed = co_await remove_files(store, d);
  if (!removed) {
    co_return removed.error();
  }
  if (auto r = co_await records.pruned_files_removed(d.id); !r) {
    co_return r.error();
  }
  co_return *removed;
}

// The project's build cache, when no build used it for policy.cache_days. Returns whether it went.
boost::asio::awaitable<dp::result<bool>> expire_cache(storage::object_store& store,
                                                      const std::string& project, int64_t days) {
  auto got = co_await store.get(proto::cache_index_key(project));
  if (!got) {
    if (got.error().is(errc::not_found)) {
      co_return false;
    }
    co_return got.error();
  }
  auto text = co_await got->read_all();
  if (!text) {
    co_return text.error();
  }
  auto index = buildplan::parse_cache_index(*text);
  if (!index || !cache_unused(*index, days, dp::now_ms())) {
    co_return false;
  }
  auto removed = co_await store.remove_prefix(proto::cache_prefix(project));
  if (!removed) {
    co_return removed.error();
  }
  dp::log::info(
      "build cache removed: unused for BUILD_CACHE_DAYS",
      {{"project", project}, {"days", days}, {"objects", static_cast<int64_t>(*removed)}});
  co_return true;
}

// One deployment's files that would not go (storage down, say) do not hold up the others': it
// stays in retention:pruning for the next pass.
void warn_unfinished(const std::string& id, const dp::error& e) {
  dp::log::warn("cannot remove a pruned deployment's files; the next retention pass retries",
                {{"deployment", id}, {"error", e}});
}

}  // namespace

retention_policy policy_for(const proto::project& p, const retention_policy& platform) {
  return {p.keep_deployments.value_or(platform.keep_deployments),
          p.keep_production_days.value_or(platform.keep_production_days), platform.cache_days};
}

bool cache_unused(const buildplan::cache_index& index, int64_t days, int64_t now_ms) {
  int64_t last = 0;
  for (const auto& e : index.entries) {
    last = std::max(last, e.used_at);
  }
  return days > 0 && last < now_ms - days * day_ms;
}

std::vector<std::string> select_prunable(const std::vector<proto::deployment>& deployments,
                                         const retention_policy& policy,
                                         const retention_facts& facts) {
  std::vector<const proto::deployment*> order;
  for (const auto& d : deployments) {
    order.push_back(&d);
  }
  std::sort(order.begin(), order.end(), newer);
  int64_t horizon = facts.now_ms - policy.keep_production_days * day_ms;
  // What a rollback goes back to: the deployment production left last.
  const proto::deployment* rollback = nullptr;
  for (const auto* d : order) {
    if (d->production_until && d->id != facts.production && d->status == deployment_status::ready &&
        (!rollback || *d->production_until > *rollback->production_until)) {
      rollback = d;
    }
  }
  std::vector<std::string> out;
  int64_t ready_seen = 0;
  for (const auto* d : order) {
    if (!proto::is_final(d->status) || d->pruned_at) {
      continue;
    }
    bool keep = d->id == facts.production || d == rollback || facts.served.contains(d->id);
    if (d->status == deployment_status::ready) {
      // Production and the other kept ones count among the newest too.
      ++ready_seen;
      keep = keep || ready_seen <= policy.keep_deployments ||
             (d->production_until && *d->production_until >= horizon);
    } else {
      keep = keep || d->created_at >= horizon;
    }
    if (!keep) {
      out.push_back(d->id);
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

boost::asio::awaitable<dp::result<retention_report>> prune_deployments(
    state::records& records, storage::object_store& store, const retention_policy& platform) {
  retention_report report;
  // What an earlier pass marked but could not finish removing.
  auto unfinished = co_await records.pruning();
  if (!unfinished) {
    co_return unfinished.error();
  }
  for (const auto& id : *unfinished) {
    auto d = co_await records.get_deployment(id);
    if (!d) {
      if (!d.error().is(errc::not_found)) {
        co_return d.error();
      }
      // Deleted since, files included: nothing left to remove.
      if (auto r = co_await records.pruned_files_removed(id); !r) {
        co_return r.error();
      }
      continue;
    }
    auto removed = co_await finish_pruning(records, store, *d);
    if (!removed) {
      warn_unfinished(id, removed.error());
      continue;
    }
    report.objects += *removed;
  }
  // Custom domains name alias labels; what those serve stays.
  std::set<std::string> served;
  auto labels = co_await records.domain_targets();
  if (!labels) {
    co_return labels.error();
  }
  for (const auto& label : *labels) {
    auto id = co_await records.resolve_alias(label);
    if (!id) {
      co_return id.error();
    }
    if (*id) {
      served.insert(**id);
    }
  }
  auto names = co_await records.project_names();
  if (!names) {
    co_return names.error();
  }
  for (const auto& name : *names) {
    auto p = co_await records.get_project(name);
    if (!p) {
      if (p.error().is(errc::not_found)) {
        continue;  // deleted meanwhile
      }
      co_return p.error();
    }
    ++report.projects;
    auto production = co_await records.resolve_alias(name);
    auto count = co_await records.deployment_count(name);
    if (!production || !count) {
      co_return !production ? production.error() : count.error();
    }
    auto ids = co_await records.deployment_ids(name, 0, *count);
    if (!ids) {
      co_return ids.error();
    }
    std::vector<proto::deployment> deployments;
    for (const auto& id : *ids) {
      auto d = co_await records.get_deployment(id);
      if (d) {
        deployments.push_back(std::move(*d));
      } else if (!d.error().is(errc::not_found)) {
        co_return d.error();
      }
    }
    // What the project's preview aliases (branches, pull requests) serve stays too.
    retention_facts facts{*production, served, dp::now_ms()};
    auto previews = co_await records.preview_labels(name);
    if (!previews) {
      co_return previews.error();
    }
    for (const auto& label : *previews) {
      auto id = co_await records.resolve_alias(label);
      if (!id) {
        co_return id.error();
      }
      if (*id) {
        facts.served.insert(**id);
      }
    }
    for (const auto& id : select_prunable(deployments, policy_for(*p, platform), facts)) {
      auto marked = co_await records.mark_pruned(id, name);
      if (!marked) {
        co_return marked.error();
      }
      if (!*marked) {
        continue;  // promoted meanwhile, or another pass has it
      }
      ++report.pruned;
      const auto& d = *std::find_if(deployments.begin(), deployments.end(),
                                    [&](const proto::deployment& x) { return x.id == id; });
      auto removed = co_await finish_pruning(records, store, d);
      if (!removed) {
        warn_unfinished(id, removed.error());
        continue;
      }
      report.objects += *removed;
      dp::log::info("deployment pruned by the retention policy",
                    {{"deployment", id}, {"project", name}, {"objects", *removed}});
    }
    if (platform.cache_days > 0) {
      auto expired = co_await expire_cache(store, name, platform.cache_days);
      if (!expired) {
        dp::log::warn("cannot expire a build cache; the next retention pass retries",
                      {{"project", name}, {"error", expired.error()}});
      } else if (*expired) {
        ++report.caches;
      }
    }
  }
  co_return report;
}

}  // namespace dp::worker
