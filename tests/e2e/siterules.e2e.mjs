// End to end, through deploy/local/run.sh: the fixture tests/fixtures/siteconfig-site (its own
// _redirects, _headers with a Basic-Auth path, and vercel.json) deployed from a git repository;
// redirects, rewrites, headers on 200/304/404, 401 then 200 with credentials, the build log's
// warnings for the dropped rules, the project's protection setting, and its redirects_shadowing
// (a redeploy with "rules" lets a rule win over an existing file).
// Usage: node tests/e2e/siterules.e2e.mjs <build dir> <repo root>
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {after, before, describe, it} from 'node:test';

import {api, followLogs, gitRepo, locations, startPlatform, waitFor} from './platform.mjs';

const {repoRoot, binDir} = locations(import.meta.url);
const fixture = path.join(repoRoot, 'tests/fixtures/siteconfig-site');
let platform = null;
let repo = null;

async function cleanUp() {
  if (platform) {
    await platform.stop();
    platform.remove();
  }
  if (repo)
    fs.rmSync(repo, {recursive: true, force: true});
}

const watchdog = setTimeout(async () => {
  console.error('siterules.e2e: overall time limit reached; cleaning up');
  await cleanUp();
  process.exit(1);
}, 300_000);
watchdog.unref();

// {relative path: content} of a directory.
function readTree(dir, prefix = '') {
  const out = {};
  for (const e of fs.readdirSync(dir, {withFileTypes: true})) {
    const rel = path.join(prefix, e.name);
    if (e.isDirectory())
      Object.assign(out, readTree(path.join(dir, e.name), rel));
    else
      out[rel] = fs.readFileSync(path.join(dir, e.name));
  }
  return out;
}

// GET through the proxy with Host <label>.localhost and the given request headers.
function get(label, route, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(
        {
          host: '127.0.0.1',
          port: platform.proxyPort,
          path: route,
          headers: {host: `${label}.localhost`, ...headers},
          agent: false,
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({
                          status: res.statusCode,
                          headers: res.headers,
                          body: Buffer.concat(chunks).toString('utf8'),
                        }));
          res.on('error', reject);
        });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${label}${route} timed out`)));
  });
}

const basic = (user, password) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('site rules end to end (run.sh)', {concurrency: false}, () => {
  let lines = [];

  before(async () => {
    platform = await startPlatform({binDir, repoRoot});
    repo = gitRepo(readTree(fixture));
    const created = await api(platform, 'POST', '/v1/deployments',
                              {git_url: `file://${repo}`, project: 'ruled'});
    assert.equal(created.status, 202, JSON.stringify(created.data));
    const stream = await followLogs(platform, created.data.id);
    lines = stream.events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data).line);
    const last = JSON.parse(stream.events.at(-1).data);
    assert.equal(last.status, 'ready', `${JSON.stringify(last)}\n${lines.join('\n')}`);
  });
  after(cleanUp);

  it('writes each dropped rule to the build log with its file and line', () => {
    const log = lines.join('\n');
    assert.match(log, /^_redirects:5: warning: .*/m, log);
    assert.match(log, /^vercel\.json(:\d+)?: warning: .*regions/m, log);
    assert.match(log, /^site rules: 5 redirects and rewrites/m, log);
  });

  it('redirects with the query kept, and rewrites inside the deployment', async () => {
    let r = await get('ruled', '/old?ref=mail');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, '/about?ref=mail');
    assert.equal(r.headers['x-frame-options'], 'DENY', 'header rules reach redirects');
    r = await get('ruled', '/blog/2024/hello');
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, '/posts/2024/hello');
    r = await get('ruled', '/vold/hello');  // vercel.json, permanent
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, '/blog/hello');
    r = await get('ruled', '/app/settings/profile');
    assert.equal(r.status, 200);
    assert.match(r.body, /<h1>home<\/h1>/);
    r = await get('ruled', '/elsewhere/x');  // the proxy to another host was dropped
    assert.equal(r.status, 404);
  });

  it('adds the header rules to 200, 304 and 404 and never serves the rule files', async () => {
    const page = await get('ruled', '/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    const again = await get('ruled', '/', {'if-none-match': page.headers.etag});
    assert.equal(again.status, 304);
    assert.equal(again.headers['x-frame-options'], 'DENY');
    const asset = await get('ruled', '/assets/app.js');
    assert.equal(asset.status, 200);
    assert.equal(asset.headers['cache-control'], 'public, max-age=600');
    assert.equal(asset.headers['x-vercel-rule'], 'yes');
    const missing = await get('ruled', '/nothing-here');
    assert.equal(missing.status, 404);
    assert.match(missing.body, /custom 404/);
    assert.equal(missing.headers['x-frame-options'], 'DENY');
    for (const f of ['/_redirects', '/_headers', '/.site-rules.json'])
      assert.equal((await get('ruled', f)).status, 404, f);
  });

  it('asks for Basic-Auth on its path: 401, then 200 with the credentials', async () => {
    let r = await get('ruled', '/members/');
    assert.equal(r.status, 401);
    assert.match(r.headers['www-authenticate'], /^Basic realm=/);
    r = await get('ruled', '/members/', {authorization: basic('member', 'wrong')});
    assert.equal(r.status, 401);
    r = await get('ruled', '/members/', {authorization: basic('member', 'opensesame')});
    assert.equal(r.status, 200);
    assert.match(r.body, /members only/);
  });

  it('protects the whole project once the setting says all, and not after it is removed',
     async () => {
       let r = await api(platform, 'PATCH', '/v1/projects/ruled',
                         {protection: {scope: 'all', username: 'team', password: 'hunter22'}});
       assert.equal(r.status, 200, JSON.stringify(r.data));
       assert.deepEqual(r.data.protection, {scope: 'all', username: 'team', password_set: true});
       // A route event tells the proxy at once (its lookup TTL is the backstop).
       await waitFor('the proxy to ask for credentials',
                     async () => (await get('ruled', '/')).status === 401, 30_000);
       assert.equal((await get('ruled', '/', {authorization: basic('team', 'hunter22')})).status,
                    200);
       r = await api(platform, 'PATCH', '/v1/projects/ruled', {protection: null});
       assert.equal(r.status, 200);
       await waitFor('the proxy to serve without credentials',
                     async () => (await get('ruled', '/')).status === 200, 30_000);
     });

  it('lets rules win over existing files once redirects_shadowing is rules (from the next build)',
     async () => {
       assert.match((await get('ruled', '/about')).body, /<h1>about<\/h1>/, 'the file wins');
       let r = await api(platform, 'PATCH', '/v1/projects/ruled', {redirects_shadowing: 'rules'});
       assert.equal(r.status, 200, JSON.stringify(r.data));
       assert.equal(r.data.redirects_shadowing, 'rules');
       r = await api(platform, 'PATCH', '/v1/projects/ruled', {redirects_shadowing: 'netlify'});
       assert.equal(r.status, 400);
       assert.match(r.data.error.message, /redirects_shadowing/);
       const created = await api(platform, 'POST', '/v1/deployments',
                                 {git_url: `file://${repo}`, project: 'ruled'});
       assert.equal(created.status, 202, JSON.stringify(created.data));
       const stream = await followLogs(platform, created.data.id);
       const log = stream.events.filter((e) => e.event === 'log')
                       .map((e) => JSON.parse(e.data).line)
                       .join('\n');
       assert.equal(JSON.parse(stream.events.at(-1).data).status, 'ready', log);
       assert.match(log, /rules apply over files/, log);
       await waitFor('the rule to answer /about',
                     async () => /<h1>home<\/h1>/.test((await get('ruled', '/about')).body),
                     30_000);
       assert.match((await get('ruled', '/assets/app.js')).body, /./, 'other files stay');
     });
});
