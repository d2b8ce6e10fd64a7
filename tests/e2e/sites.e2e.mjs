// Real public sites (tests/fixtures/sites/: one starter of each framework the platform detects,
// and a plain HTML site) deployed as a new user would: `deployctl deploy ./<site>` with no settings
// at all, on the platform of deploy/local/run.sh. For each: the build is ready, the home page and
// the scripts, styles, icons and images it names are served with their content types; an SPA
// answers a client-side route with its index.html (200); a static site answers an unknown path with
// its 404.html (404); the other pages it lists answer 200 (`/about` of an export that wrote
// about.html). Then each is redeployed after a one-line source change, which must be what is
// served (whatever a build cache kept from the first build). The sites are queued at once (the
// worker runs two builds at a time) and checked as each finishes; the installs come from the npm
// registry. `light` (ctest e2e_sites) deploys the sites sites.mjs does not mark heavy, `heavy`
// (e2e_sites_heavy) the others.
// Usage: node tests/e2e/sites.e2e.mjs <build dir> <repo root> light|heavy
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {after, before, describe, it} from 'node:test';

import {followLogs, locations, site, startPlatform} from './platform.mjs';
import {applyChange, copyFixture, deployDirectory, expectedType, fixtures, pageAssets} from './sites.mjs';

const {repoRoot, binDir} = locations(import.meta.url);
const group = process.argv[4];
if (group !== 'light' && group !== 'heavy') {
  console.error('usage: sites.e2e.mjs <build dir> <repo root> light|heavy');
  process.exit(2);
}
const chosen = fixtures.filter((f) => Boolean(f.heavy) === (group === 'heavy'));
const temps = [];
let platform = null;

async function cleanUp() {
  if (platform) {
    const stopped = await platform.stop();
    if (stopped.left.length)
      console.error(`sites.e2e: processes left behind (killed): ${stopped.left.join(', ')}`);
    platform.remove();
  }
  platform = null;
  for (const d of temps)
    fs.rmSync(d, {recursive: true, force: true});
}

// ctest kills a test that overruns its TIMEOUT without a chance to clean up: stop first.
const watchdog = setTimeout(async () => {
  console.error('sites.e2e: overall time limit reached; cleaning up');
  await cleanUp();
  process.exit(1);
}, 840_000);
watchdog.unref();

// Uploads `dir`; resolves once it is queued, to {done}: the promise of {id, project, lines, final}
// once its log stream has ended.
async function queue(dir) {
  const queued = await deployDirectory(platform, binDir, dir);
  const done = followLogs(platform, queued.id, {timeoutMs: 780_000}).then((stream) => {
    const lines =
        stream.events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data).line);
    const last = stream.events.at(-1);
    const final = last?.event === 'status' ? JSON.parse(last.data) : null;
    return {...queued, lines, final};
  });
  done.catch(() => {});  // its test reports it
  return {done};
}

// The deployment ended ready, under the fixture's name.
function assertReady(f, d) {
  const explain =
      `deployment ${d.id} of ${d.project}: ${JSON.stringify(d.final)}\n${d.lines.join('\n')}`;
  assert.equal(d.project, f.name, 'the project is named after the directory');
  assert.equal(d.final?.status, 'ready', explain);
  // What the build did, for the test's log: install and build times, the output directory.
  const summary =
      /^(install: skipped|(install|build) finished in|output directory|deployment ready in)/;
  console.log(`# ${f.name}: ${d.lines.filter((l) => summary.test(l)).join('; ')}`);
  return explain;
}

// The home page and every file it names, with their content types: {home, appText} (the
// scripts' text).
async function assertHome(f, explain) {
  const home = await site(platform, f.name, '/');
  assert.equal(home.status, 200, `GET /\n${explain}`);
  assert.match(home.headers['content-type'], /^text\/html\b/);
  assert.match(home.body, f.home, `the home page:\n${home.body.slice(0, 2000)}\n${explain}`);
  const assets = pageAssets(home.body);
  const count = (as) => assets.filter((a) => a.as === as).length;
  assert.ok(
      count('script') >= f.scripts, `scripts named by the home page: ${JSON.stringify(assets)}`);
  assert.ok(
      count('style') >= f.styles, `stylesheets named by the home page: ${JSON.stringify(assets)}`);
  let appText = '';
  for (const a of assets) {
    const r = await site(platform, f.name, a.path);
    assert.equal(r.status, 200, `GET ${a.path} (${a.as} of the home page)`);
    const type = expectedType(a.path) ??
        (a.as === 'script'    ? /^text\/javascript\b/ :
             a.as === 'style' ? /^text\/css\b/ :
                                /./);
    assert.match(r.headers['content-type'], type, `content type of ${a.path}`);
    if (a.as === 'script')
      appText += r.body;
  }
  if (f.app)
    assert.match(appText, f.app, 'the app is in the scripts');
  return {home, appText};
}

describe(`real sites deployed with no settings (${group})`, {concurrency: true}, () => {
  const firsts = new Map();  // name -> {dir, done}

  before(async () => {
    platform = await startPlatform({binDir, repoRoot});
    // Uploaded one at a time, so that the queue runs them in this order (the slowest first);
    // each test awaits its own deployment's end.
    for (const f of chosen) {
      const {dir, parent} = copyFixture(repoRoot, f.name);
      temps.push(parent);
      try {
        firsts.set(f.name, {dir, done: (await queue(dir)).done});
      } catch (e) {
        const failed = Promise.reject(e);
        failed.catch(() => {});  // its test reports it
        firsts.set(f.name, {dir, done: failed});
      }
    }
  });
  after(cleanUp);

  for (const f of chosen) {
    it(`${f.name}: builds, serves its pages and files, and a one-line change`, async () => {
      const {dir, done} = firsts.get(f.name);
      const explain = assertReady(f, await done);
      const {home} = await assertHome(f, explain);

      for (const [page, holds] of Object.entries(f.pages ?? {})) {
        const r = await site(platform, f.name, page);
        assert.equal(r.status, 200, `GET ${page}`);
        assert.match(r.headers['content-type'], /^text\/html\b/, `content type of ${page}`);
        assert.match(r.body, holds, `GET ${page}`);
      }
      if (f.kind === 'spa') {
        // A client-side route: the app's own index.html, which the router then reads.
        const r = await site(platform, f.name, '/settings/profile');
        assert.equal(r.status, 200, 'a client-side route');
        assert.match(r.headers['content-type'], /^text\/html\b/);
        assert.equal(r.body, home.body, 'a client-side route gets index.html');
      } else if (f.kind === 'static') {
        const r = await site(platform, f.name, f.notFoundPath ?? '/no/such/page');
        assert.equal(r.status, 404, 'an unknown path of a static site');
        assert.match(r.headers['content-type'], /^text\/html\b/);
        assert.match(r.body, f.notFound, 'the site\'s own 404 page');
      }

      // The redeploy after a one-line change serves the change.
      applyChange(f, dir);
      const again = await (await queue(dir)).done;
      const explainAgain = assertReady(f, again);
      const {home: changed, appText} = await assertHome(f, explainAgain);
      assert.ok(
          (changed.body + appText).includes(f.change.shows),
          `the redeployed site shows "${f.change.shows}"\n${explainAgain}`);
    });
  }
});
