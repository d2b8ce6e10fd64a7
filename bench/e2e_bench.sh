#!/usr/bin/env bash
# POST to live: how long a deployment of the no-dependency fixture site (tests/e2e/platform.mjs,
# plainSite: nothing to install, then `npm run build` = `node build.mjs` writing 4 files) takes from
# POST /v1/deployments until the proxy serves the new content, and where that time goes.
# Goal: under 1.5 s on this machine (2 shared cores), Release binaries.
#
# The platform is the README's run command (deploy/local/run.sh) over a fresh DATA_DIR on free
# ports. One warm-up deployment creates the project, then N redeploys of a new commit each are
# timed. Phases come from the deployment record and its log events' timestamps (one clock):
#   queued   POST sent -> started_at (API, queue, worker take, build-runner process start)
#   clone    started_at -> "cloned commit" line
#   install  -> "install finished", or "build: running" when there is nothing to install (plan,
#            sandbox probe, and `npm ci` under bubblewrap if it runs)
#   build    -> "build finished" (`npm run build` under bubblewrap)
#   upload   -> "manifest written" (validate, upload, manifest)
#   go-live  -> the proxy's first response with the new content (log flush, ready, alias switch,
#            the proxy's alias cache invalidated by the event; polled every 5 ms)
#   platform POST->live minus install and build: the platform's own share
# Measured 2026-11-24 (load average ~6 from other work): median 2.9-3.1 s, of which the platform
# 0.44-0.58 s; each npm invocation costs ~1 s here (npm 11 start-up), so the two alone exceed
# the goal.
#
# Usage: bench/e2e_bench.sh [N]   (N redeploys, default 5)
# Environment: DP_BIN_DIR, a build tree with the three binaries (default: build build/release
# like run.sh does).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-5}"

if [[ -z ${DP_BIN_DIR:-} ]]; then
  DP_BIN_DIR="$repo_root/build/release"
  export CCACHE_BASEDIR="$repo_root" CCACHE_NOHASHDIR=1
  cmake -S "$repo_root" -B "$DP_BIN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_TESTS=ON \
    -DDP_BUILD_BENCH=OFF >/dev/null
  cmake --build "$DP_BIN_DIR" --target api-server build-runner s3-reverse-proxy
fi
if grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$DP_BIN_DIR/CMakeCache.txt" 2>/dev/null; then
  :
else
  echo "e2e_bench: warning: $DP_BIN_DIR is not a Release tree; the numbers are not comparable" >&2
fi

export DP_BIN_DIR DP_REPO_ROOT="$repo_root" BENCH_RUNS="$runs"
exec node --input-type=module - <<'NODE'
import fs from 'node:fs';
import path from 'node:path';
const { api, commitAll, gitRepo, plainSite, site, sleep, startPlatform, waitFor } = await import(
  path.join(process.env.DP_REPO_ROOT, 'tests/e2e/platform.mjs'));

const runs = Number(process.env.BENCH_RUNS);
const platform = await startPlatform({ binDir: process.env.DP_BIN_DIR, repoRoot: process.env.DP_REPO_ROOT });
const repo = gitRepo(plainSite('warm-up'));
const rows = [];
try {
  // Posts a deployment and polls the proxy until it serves `version`.
  async function deploy(version, body) {
    const t0 = Date.now();
    const created = await api(platform, 'POST', '/v1/deployments', body);
    if (created.status !== 202) throw new Error(`POST: ${created.status} ${JSON.stringify(created.data)}`);
    const id = created.data.id;
    const needle = `<h1>site ${version}</h1>`;
    let live = null;
    const deadline = t0 + 120_000;
    while (!live) {
      const r = await site(platform, 'bench', '/');
      if (r.status === 200 && r.body.includes(needle)) {
        live = Date.now();
        break;
      }
      if (Date.now() > deadline) throw new Error(`deployment ${id} never went live`);
      // A failed build never goes live: stop polling then.
      if (r.status !== 200 || Date.now() - t0 > 5_000) {
        const d = await api(platform, 'GET', `/v1/deployments/${id}`);
        if (['failed', 'canceled'].includes(d.data.status)) throw new Error(`deployment ${id}: ${JSON.stringify(d.data)}`);
      }
      await sleep(5);
    }
    const d = (await waitFor('the final status', async () => {
      const r = await api(platform, 'GET', `/v1/deployments/${id}`);
      return r.data.status === 'ready' && r.data;
    }));
    const { data } = await api(platform, 'GET', `/v1/deployments/${id}/logs`);
    const events = Array.isArray(data) ? data : data.events || data.logs;
    const at = (re) => {
      const e = events.find((x) => re.test(x.line));
      if (!e) throw new Error(`no log line ${re} in deployment ${id}`);
      return e.ts_ms;
    };
    const marks = [t0, d.started_at, at(/^cloned commit /), at(/^install finished in |^build: running /),
      at(/^build finished in /), at(/^manifest written: /), live];
    const phases = marks.slice(1).map((m, i) => m - marks[i]);
    // What the platform itself costs: everything but the user's install and build commands.
    return phases.concat([live - t0 - phases[2] - phases[3], live - t0]);
  }

  await deploy('warm-up', { git_url: `file://${repo}`, project: 'bench' });
  for (let i = 1; i <= runs; i++) {
    const version = `run-${i}`;
    fs.writeFileSync(path.join(repo, 'version.txt'), `${version}\n`);
    commitAll(repo, version);
    rows.push(await deploy(version, { project: 'bench' }));
  }
} finally {
  const s = await platform.stop();
  if (s.left.length) console.error(`e2e_bench: processes left behind (killed): ${s.left.join(', ')}`);
  platform.remove();
  fs.rmSync(repo, { recursive: true, force: true });
}

const cols = ['queued', 'clone', 'install', 'build', 'upload', 'go-live', 'platform', 'POST->live'];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const line = (label, values) => label.padEnd(8) + values.map((v) => String(v).padStart(11)).join('');
console.log(`\nPOST to live, no-dependency site, ${runs} redeploys after a warm-up (ms); goal: POST->live < 1500 ms`);
console.log(line('run', cols));
rows.forEach((r, i) => console.log(line(String(i + 1), r)));
const med = cols.map((_, c) => median(rows.map((r) => r[c])));
console.log(line('median', med));
console.log(line('max', cols.map((_, c) => Math.max(...rows.map((r) => r[c])))));
console.log(`goal ${med.at(-1) < 1500 ? 'met' : 'NOT met'}: median POST->live ${med.at(-1)} ms (goal < 1500 ms), ` +
  `of which the platform ${med.at(-2)} ms and the install and build commands the rest`);
NODE
