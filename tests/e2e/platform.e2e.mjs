// End to end, through the README's run command (deploy/local/run.sh with DP_BIN_DIR): deploy a
// no-dependency site and the Vite + React fixture from local git repositories, follow the log
// stream, fetch through the proxy, redeploy while polling (atomic switch), roll back, and stop.
// Usage: node tests/e2e/platform.e2e.mjs <build dir> <repo root>
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {after, before, describe, it} from 'node:test';

import {api, assetPath, commitAll, followLogs, gitRepo, locations, plainSite, site, startPlatform, tempDir, waitFor,} from './platform.mjs';

const {repoRoot, binDir} = locations(import.meta.url);
const temps = [];
let platform = null;
let stopped = null;

async function cleanUp() {
  if (platform && !stopped)
    stopped = await platform.stop();
  if (platform)
    platform.remove();
  for (const d of temps)
    fs.rmSync(d, {recursive: true, force: true});
}

// ctest kills a test that overruns its TIMEOUT without a chance to clean up: stop first.
const watchdog = setTimeout(async () => {
  console.error('platform.e2e: overall time limit reached; cleaning up');
  await cleanUp();
  process.exit(1);
}, 540_000);
watchdog.unref();

// Deploys and follows the stream to its end; returns {id, events, logLines, final}.
async function deploy(body) {
  const created = await api(platform, 'POST', '/v1/deployments', body);
  assert.equal(created.status, 202, JSON.stringify(created.data));
  const {id} = created.data;
  const stream = await followLogs(platform, id);
  const logs = stream.events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data));
  const last = stream.events.at(-1);
  assert.ok(last, 'the stream sent no event');
  assert.equal(last.event, 'status', 'the stream ends with the final status');
  const final = JSON.parse(last.data);
  return {id, created: created.data, stream, logs, lines: logs.map((l) => l.line), final};
}

function explain(d) {
  return `deployment ${d.id}: ${JSON.stringify(d.final)}\n${d.lines.join('\n')}\n${
      platform.logs()}`;
}

describe('platform end to end (run.sh)', {concurrency: false}, () => {
  let firstId = null;
  let plainRepo = null;
  const v1 = {};

  before(async () => {
    platform = await startPlatform({binDir, repoRoot});
  });
  after(cleanUp);

  it('deploys a no-dependency site; the log stream shows every phase and ends with the status',
     async () => {
       plainRepo = gitRepo(plainSite('v1'));
       temps.push(plainRepo);
       const d = await deploy({git_url: `file://${plainRepo}`, project: 'plain'});
       firstId = d.id;
       assert.equal(d.created.status, 'queued');
       // The URLs handed out name the proxy's port (run.sh passes it on as SITE_PORT).
       assert.equal(d.created.alias_url, `http://plain.localhost:${platform.proxyPort}`);
       assert.match(d.stream.contentType, /^text\/event-stream/);
       assert.equal(d.final.status, 'ready', explain(d));
       assert.equal(d.final.id, d.id);
       // Every line once, in order.
       d.logs.forEach((l, i) => assert.equal(l.seq, d.logs[0].seq + i, 'log seqs are dense'));
       const phases = {
         cloning: /^cloning file:\/\//,
         installing: /^install: skipped \(package\.json declares no dependencies/,
         building: /^build: running `npm run build`/,
         uploading: /^uploaded \d+ files/,
         ready: /^deployment ready in /,
       };
       let at = -1;
       for (const [phase, re] of Object.entries(phases)) {
         const i = d.lines.findIndex((l) => re.test(l));
         assert.ok(i > at, `phase ${phase} (${re}) in order in the log:\n${d.lines.join('\n')}`);
         at = i;
       }
       assert.ok(
           d.lines.some((l) => /^built version v1 with assets\/app\.[0-9a-f]{12}\.js$/.test(l)),
           'the build output');

       const index = await site(platform, 'plain', '/');
       assert.equal(index.status, 200);
       assert.match(index.body, /<h1>site v1<\/h1>/);
       assert.match(index.headers['content-type'], /^text\/html/);
       assert.equal(index.headers['cache-control'], 'public, max-age=0, must-revalidate');
       const css = await site(platform, 'plain', '/style.css');
       assert.equal(css.status, 200);
       assert.equal(css.body, 'body { content: "v1"; }\n');
       assert.match(css.headers['content-type'], /^text\/css/);
       const js = await site(platform, 'plain', '/app.js');
       assert.equal(js.status, 200);
       assert.equal(js.body, 'document.title = "site v1";\n');
       assert.match(js.headers['content-type'], /^(text|application)\/javascript/);
       assert.equal(js.headers['cache-control'], 'public, max-age=0, must-revalidate');
       const hashed = assetPath(index.body);
       assert.ok(hashed, 'index.html names the fingerprinted asset');
       const asset = await site(platform, 'plain', hashed);
       assert.equal(asset.status, 200);
       assert.equal(asset.body, 'console.log("asset v1");\n');
       assert.match(asset.headers['content-type'], /^(text|application)\/javascript/);
       assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable');
       // The immutable <project>-<short id> alias serves the same deployment.
       const label = new URL(d.created.url).hostname.split('.')[0];
       assert.equal((await site(platform, label, '/')).body, index.body);
       Object.assign(v1, {'/': index.body, '/style.css': css.body, '/app.js': js.body});
     });

  it('deploys the Vite + React fixture (installed from the npm registry)', async () => {
    const src = path.join(repoRoot, 'tests/fixtures/vite-react');
    const repo = tempDir('dp-e2e-vite-');
    temps.push(repo);
    fs.cpSync(src, repo, {
      recursive: true,
      filter: (f) => !/(^|\/)(node_modules|dist)(\/|$)/.test(path.relative(src, f)),
    });
    commitAll(repo, 'vite fixture');
    const d = await deploy({git_url: `file://${repo}`, project: 'vite'});
    assert.equal(d.final.status, 'ready', explain(d));
    const index = await site(platform, 'vite', '/');
    assert.equal(index.status, 200);
    assert.match(index.headers['content-type'], /^text\/html/);
    assert.match(index.body, /<div id="root">/);
    const m = /src="(\/assets\/[^"]+\.js)"/.exec(index.body);
    assert.ok(m, `index.html names a JS asset:\n${index.body}`);
    const js = await site(platform, 'vite', m[1]);
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type'], /^(text|application)\/javascript/);
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.ok(js.body.length > 1000, 'the bundle has React in it');
    // An SPA route that is not a file gets index.html or a 404 page, never a JS body.
    const missing = await site(platform, 'vite', '/assets/missing.js');
    assert.equal(missing.status, 404);
    assert.ok(d.lines.some((l) => /^cache: miss/.test(l)), explain(d));
    assert.ok(d.lines.some((l) => /^cache: saved modules/.test(l)), explain(d));
  });

  it('redeploys the unchanged Vite app from the build cache, without an install', async () => {
    const started = Date.now();
    const d = await deploy({project: 'vite'});
    const took = (Date.now() - started) / 1000;
    assert.equal(d.final.status, 'ready', explain(d));
    assert.ok(d.lines.some((l) => /^install: skipped: node_modules restored from the build cache/.test(l)),
              explain(d));
    assert.ok(!d.lines.some((l) => /^install: running/.test(l)), explain(d));
    const record = await api(platform, 'GET', `/v1/deployments/${d.id}`);
    assert.equal(record.data.cache, 'hit');
    assert.ok(record.data.cache_bytes > 0, JSON.stringify(record.data));
    console.log(`# unchanged Vite redeploy: ${took.toFixed(2)} s from POST to the final status`);
  });

  it('switches atomically on a redeploy', async () => {
    fs.writeFileSync(path.join(plainRepo, 'version.txt'), 'v2\n');
    commitAll(plainRepo, 'v2');
    // The files v2 must serve, built here from the same commit.
    const local = tempDir('dp-e2e-local-');
    temps.push(local);
    fs.cpSync(plainRepo, local, {recursive: true, filter: (f) => !f.includes('/.git')});
    execFileSync('node', ['build.mjs'], {cwd: local, stdio: 'pipe'});
    const read = (f) => fs.readFileSync(path.join(local, 'dist', f), 'utf8');
    const v2 = {
      '/': read('index.html'),
      '/style.css': read('style.css'),
      '/app.js': read('app.js')
    };
    assert.match(v2['/'], /site v2/);
    const created = await api(platform, 'POST', '/v1/deployments', {project: 'plain'});
    assert.equal(created.status, 202, JSON.stringify(created.data));
    const id = created.data.id;

    // Poll every path in turn until the new version has been served for a while after the build
    // ended. Each answer must be the old or the new file as a whole, and once a response is new,
    // none after it may be old.
    let final = null;
    let sawNewAt = null;
    let requests = 0;
    const seen = [];
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline) {
      for (const route of ['/', '/style.css', '/app.js']) {
        const r = await site(platform, 'plain', route);
        requests++;
        assert.equal(r.status, 200, `GET ${route} during the switch: ${r.status}`);
        const version = r.body === v1[route] ? 'v1' : r.body === v2[route] ? 'v2' : null;
        assert.ok(version, `GET ${route} during the switch: neither version:\n${r.body}`);
        if (version === 'v2' && sawNewAt === null)
          sawNewAt = requests;
        assert.ok(
            !(version === 'v1' && sawNewAt !== null),
            `GET ${route}: old content after the new one`);
        if (seen.at(-1) !== version)
          seen.push(version);
        if (route === '/') {
          // The fingerprinted asset the page names, fetched right after it, always matches the
          // page: when the switch falls between the two requests, the proxy answers the old
          // page's asset from the previous deployment (no 404 for a page loaded before a switch).
          const a = await site(platform, 'plain', assetPath(r.body));
          requests++;
          assert.equal(a.status, 200, `GET ${assetPath(r.body)}: ${a.status}`);
          assert.equal(
              a.body, `console.log("asset ${version}");\n`, 'the asset matches its page');
        }
      }
      if (!final) {
        const d = await api(platform, 'GET', `/v1/deployments/${id}`);
        if (['ready', 'failed', 'canceled'].includes(d.data.status))
          final = {d: d.data, at: requests};
      } else if (requests - final.at > 30) {
        break;
      }
    }
    assert.ok(final, 'the redeploy finished');
    assert.equal(final.d.status, 'ready', JSON.stringify(final.d));
    assert.deepEqual(seen, ['v1', 'v2'], 'old, then new, nothing else');
    console.log(`# ${requests} requests during the redeploy; the switch after request ${sawNewAt}`);
    const project = await api(platform, 'GET', '/v1/projects/plain');
    assert.equal(project.data.production_deployment_id, id);
  });

  it('rolls back at once with promote', async () => {
    const r = await api(platform, 'POST', '/v1/projects/plain/promote', {deployment_id: firstId});
    assert.equal(r.status, 200, JSON.stringify(r.data));
    const index = await site(platform, 'plain', '/');
    assert.equal(index.body, v1['/'], 'the very next request serves the old content');
    assert.equal((await site(platform, 'plain', '/style.css')).body, v1['/style.css']);
    const project = await api(platform, 'GET', '/v1/projects/plain');
    assert.equal(project.data.production_deployment_id, firstId);
  });

  it('stops cleanly on SIGTERM during a build and leaves no process behind', async () => {
    // A build in its install step (npm ci of the Vite fixture) when run.sh is told to stop;
    // without the build cache, which would skip the install.
    const created = await api(platform, 'POST', '/v1/deployments', {project: 'vite', no_cache: true});
    assert.equal(created.status, 202, JSON.stringify(created.data));
    await waitFor('the redeploy to run npm ci', async () => {
      const d = await api(platform, 'GET', `/v1/deployments/${created.data.id}/logs`);
      return (d.data.events || []).some((e) => e.line.startsWith('install: running'));
    });
    stopped = await platform.stop();
    // redis, api-server, worker, proxy, and the build (its runner, then bubblewrap and npm).
    assert.ok(stopped.had >= 5, `processes below run.sh when it was stopped: ${stopped.had}`);
    assert.ok(stopped.status, 'run.sh exited');
    assert.equal(stopped.status.signal, null, `run.sh ended by a signal:\n${platform.output()}`);
    assert.equal(
        stopped.status.code, 143, `run.sh's exit status after SIGTERM:\n${platform.output()}`);
    assert.deepEqual(stopped.left, [], 'processes left behind');
    assert.match(platform.output(), /run\.sh: stopped/);
  });
});

// The README's `run.sh --s3`: the same platform over a local s3rver instead of the file store.
describe('run.sh --s3', {concurrency: false}, () => {
  let onS3 = null;
  let repo = null;
  after(async () => {
    if (onS3) {
      const s = await onS3.stop();
      onS3.remove();
      assert.deepEqual(s.left, [], 'processes left behind');
    }
    if (repo)
      fs.rmSync(repo, {recursive: true, force: true});
  });

  it('deploys and serves through s3rver', async () => {
    onS3 = await startPlatform({binDir, repoRoot, args: ['--s3']});
    await waitFor('the banner naming the s3rver store',
                  async () => /storage +s3:\/\/deployments\?endpoint=http:\/\/127\.0\.0\.1:/.test(onS3.output()),
                  10_000, 100);
    repo = gitRepo(plainSite('on-s3'));
    const created = await api(onS3, 'POST', '/v1/deployments', {git_url: `file://${repo}`, project: 'ons3'});
    assert.equal(created.status, 202, JSON.stringify(created.data));
    const stream = await followLogs(onS3, created.data.id);
    const last = stream.events.at(-1);
    assert.equal(last?.event, 'status', 'the stream ends with the final status');
    assert.equal(JSON.parse(last.data).status, 'ready', onS3.logs());
    const index = await site(onS3, 'ons3', '/');
    assert.equal(index.status, 200);
    assert.match(index.body, /<h1>site on-s3<\/h1>/);
    assert.match((await site(onS3, 'ons3', '/style.css')).headers['content-type'], /^text\/css/);
  });
});
