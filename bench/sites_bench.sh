#!/usr/bin/env bash
# Cold and warm deployments of real sites (tests/fixtures/sites/: a starter of each framework the
# platform detects, and plain HTML; tests/e2e/sites.mjs lists them), each uploaded as a user does (`deployctl deploy ./<site>`, no
# settings): the first deployment of a new project (cold), a redeploy of the same directory
# (warm), and a redeploy after a one-line source change (change, checked to be served). One site
# at a time on one platform (deploy/local/run.sh over a fresh DATA_DIR, free ports).
#   deploy   from starting deployctl (pack, upload) to the final status event: ready, which is
#            also when the site is live (ready and the alias switch are one step); checked through
#            the proxy afterwards
#   install  the install step's time from the build log ("install finished in"), plus what a build
#            cache's restore took before it ("cache: restored ... in"); - when neither ran
#   build    the build step's time from the build log
# Goals (issue 16): the Vite + React app's unchanged redeploy under 4 s and its install at least
# 5x faster than cold; the Astro and Docusaurus sites at least 2x faster warm than cold.
# Installs come from the npm registry, so the numbers move with it.
#
# Usage: bench/sites_bench.sh [site...]   (default: all of them; the heavy ones take minutes each)
# Environment: DP_BIN_DIR, a build tree with the three services and deployctl (default: build
# build/release like run.sh does).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ -z ${DP_BIN_DIR:-} ]]; then
  DP_BIN_DIR="$repo_root/build/release"
  export CCACHE_BASEDIR="$repo_root" CCACHE_NOHASHDIR=1
  cmake -S "$repo_root" -B "$DP_BIN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_TESTS=ON \
    -DDP_BUILD_BENCH=OFF >/dev/null
  cmake --build "$DP_BIN_DIR" --target api-server build-runner s3-reverse-proxy deployctl
fi
if ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$DP_BIN_DIR/CMakeCache.txt" 2>/dev/null; then
  echo "sites_bench: warning: $DP_BIN_DIR is not a Release tree; the numbers are not comparable" >&2
fi

export DP_BIN_DIR DP_REPO_ROOT="$repo_root" BENCH_SITES="$*"
exec node --input-type=module - <<'NODE'
import fs from 'node:fs';
import path from 'node:path';
const root = process.env.DP_REPO_ROOT;
const binDir = process.env.DP_BIN_DIR;
const { followLogs, site, startPlatform } = await import(path.join(root, 'tests/e2e/platform.mjs'));
const { applyChange, copyFixture, deployDirectory, fixtures, siteText } =
  await import(path.join(root, 'tests/e2e/sites.mjs'));

const wanted = process.env.BENCH_SITES.split(' ').filter(Boolean);
for (const name of wanted) {
  if (!fixtures.some((f) => f.name === name)) {
    console.error(`sites_bench: no site '${name}' (${fixtures.map((f) => f.name).join(', ')})`);
    process.exit(2);
  }
}
const chosen = wanted.length ? fixtures.filter((f) => wanted.includes(f.name)) : fixtures;

const platform = await startPlatform({ binDir, repoRoot: root });
const temps = [];
const rows = [];
try {
  // One deployment of `dir`: {ms, install, build, wrong} (seconds as logged, or null when the
  // step did not run; wrong: why the site served is not the site, or null). A failed build stops
  // the benchmark.
  async function deploy(f, dir) {
    const t0 = Date.now();
    const { id } = await deployDirectory(platform, binDir, dir);
    const stream = await followLogs(platform, id, { timeoutMs: 900_000 });
    const live = Date.now();
    const last = stream.events.at(-1);
    const lines = stream.events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data).line);
    const status = last?.event === 'status' ? JSON.parse(last.data).status : null;
    if (status !== 'ready') throw new Error(`${f.name}: deployment ${id} ended ${status}:\n${lines.join('\n')}`);
    const home = await site(platform, f.name, '/');
    const wrong = home.status !== 200 || !f.home.test(home.body) ?
      `${f.name}: ready, but its home page is not served (GET / answers ${home.status}; ` +
        `${lines.filter((l) => l.startsWith('output directory')).join('')})` : null;
    // Seconds summed over the log lines `re` matches; null when none does.
    const seconds = (re) => {
      const found = lines.map((l) => re.exec(l)).filter(Boolean).map((m) => Number(m[1]));
      return found.length ? found.reduce((a, b) => a + b, 0) : null;
    };
    const install = seconds(/^(?:install finished|cache: restored .*) in ([0-9.]+) s$/);
    return { ms: live - t0, install, build: seconds(/^build finished in ([0-9.]+) s$/), wrong };
  }

  for (const f of chosen) {
    const { dir, parent } = copyFixture(root, f.name);
    temps.push(parent);
    const cold = await deploy(f, dir);
    const warm = await deploy(f, dir);
    applyChange(f, dir);
    const change = await deploy(f, dir);
    if (!change.wrong && !(await siteText(platform, f.name)).includes(f.change.shows)) {
      change.wrong = `${f.name}: the changed site does not show "${f.change.shows}"`;
    }
    rows.push({ name: f.name, cold, warm, change });
    console.error(`sites_bench: ${f.name} done`);
  }
} finally {
  const s = await platform.stop();
  if (s.left.length) console.error(`sites_bench: processes left behind (killed): ${s.left.join(', ')}`);
  platform.remove();
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
}

// A deployment whose site is not served right is marked with a note under the table.
const notes = [];
const sec = (d) => {
  if (!d.wrong) return (d.ms / 1000).toFixed(1);
  if (!notes.includes(d.wrong)) notes.push(d.wrong);
  return `${(d.ms / 1000).toFixed(1)} (${notes.indexOf(d.wrong) + 1})`;
};
const step = (s) => (s === null ? '-' : s.toFixed(1));
const ratio = (a, b) => (a === null || b === null || b === 0 ? '-' : `${(a / b).toFixed(1)}x`);
const cols = ['site', 'cold s', 'warm s', 'change s', 'cold/warm', 'inst cold', 'inst warm',
  'inst change', 'inst c/w', 'build cold', 'build warm'];
const widths = [12, ...cols.slice(1).map((c) => Math.max(c.length, 8) + 2)];
const line = (values) => values.map((v, i) => (i === 0 ? String(v).padEnd(widths[i]) : String(v).padStart(widths[i]))).join('');
console.log(`\nReal sites uploaded with deployctl, no settings: deployctl start -> live (s), and the build log's install and build steps (s)`);
console.log(line(cols));
for (const r of rows) {
  console.log(line([r.name, sec(r.cold), sec(r.warm), sec(r.change), ratio(r.cold.ms, r.warm.ms),
    step(r.cold.install), step(r.warm.install), step(r.change.install), ratio(r.cold.install, r.warm.install),
    step(r.cold.build), step(r.warm.build)]));
}
notes.forEach((n, i) => console.log(`(${i + 1}) ${n}`));
// The issue's goals, for the sites measured: [site, (row) => [what, met]].
const goals = [
  ['vite-react', (r) => [`vite-react unchanged redeploy < 4 s: ${sec(r.warm)} s`, r.warm.ms < 4000]],
  ['vite-react', (r) => [`vite-react install >= 5x faster warm than cold: ${ratio(r.cold.install, r.warm.install)}`,
    r.warm.install === null || r.cold.install >= 5 * r.warm.install]],
  ['astro', (r) => [`astro >= 2x faster warm than cold: ${ratio(r.cold.ms, r.warm.ms)}`, r.cold.ms >= 2 * r.warm.ms]],
  ['docusaurus', (r) => [`docusaurus >= 2x faster warm than cold: ${ratio(r.cold.ms, r.warm.ms)}`, r.cold.ms >= 2 * r.warm.ms]],
];
for (const [name, check] of goals) {
  const r = rows.find((x) => x.name === name);
  if (!r) continue;
  const [what, met] = check(r);
  console.log(`goal ${met ? 'met' : 'NOT met'}: ${what}`);
}
NODE
