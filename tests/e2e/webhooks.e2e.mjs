// End to end, git push -> deployed: a local bare repository the platform clones (file://), and a
// driver that pushes to it and posts the GitHub webhook a forge would send, signed with the
// project's secret. A push to main updates production; a push to feature/x serves a preview at
// its branch alias while production is unchanged; a pull request gets <project>--pr-<n>, gone
// once it is closed; a burst of five pushes to main ends with the last commit live and at most
// two builds run (the rest superseded). The worker reports the commit's status to a local forge API.
// Usage: node tests/e2e/webhooks.e2e.mjs <build dir> <repo root>
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {createHmac, randomUUID} from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {after, before, describe, it} from 'node:test';

import {api, commitAll, gitRepo, locations, plainSite, site, startPlatform, tempDir, waitFor,} from './platform.mjs';

const {repoRoot, binDir} = locations(import.meta.url);
const temps = [];
let platform = null;
let stopped = null;

async function cleanUp() {
  if (statusServer)
    statusServer.close();
  if (platform && !stopped)
    stopped = await platform.stop();
  if (platform)
    platform.remove();
  for (const d of temps)
    fs.rmSync(d, {recursive: true, force: true});
}

const watchdog = setTimeout(async () => {
  console.error('webhooks.e2e: overall time limit reached; cleaning up');
  await cleanUp();
  process.exit(1);
}, 540_000);
watchdog.unref();

const project = 'hooked';
let work = null;     // the developer's clone
let bare = null;     // the "forge": a bare repository the platform clones
let secret = null;
// The forge's status API: a local server that records what the worker sends.
let statusServer = null;
const statuses = [];
let featureAlias = '';  // feature/x's branch alias, as the deployment reports it

function git(...args) {
  return execFileSync('git', args, {cwd: work, stdio: 'pipe'}).toString().trim();
}

// Commits version `v` on `branch` in the clone, pushes it to the bare repository and returns the
// commit's sha.
function pushVersion(branch, v) {
  git('checkout', '-q', '-B', branch);
  fs.writeFileSync(path.join(work, 'version.txt'), `${v}\n`);
  commitAll(work, `version ${v}`);
  git('push', '-q', '-f', 'origin', branch);
  return git('rev-parse', 'HEAD');
}

// What GitHub would post: the body signed with the project's secret.
async function deliver(event, payload) {
  const body = JSON.stringify(payload);
  const res = await fetch(`${platform.api}/v1/webhooks/github/${project}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': event,
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': 'sha256=' + createHmac('sha256', secret).update(body).digest('hex'),
    },
    body,
  });
  const text = await res.text();
  return {status: res.status, data: text ? JSON.parse(text) : null};
}

const repository = {full_name: 'e2e/hooked', default_branch: 'main'};

async function pushEvent(branch, sha, message) {
  const r = await deliver('push', {
    ref: `refs/heads/${branch}`,
    before: '0'.repeat(40),
    after: sha,
    created: false,
    deleted: false,
    head_commit: {id: sha, message, author: {name: 'e2e'}},
    repository,
  });
  assert.equal(r.status, 202, JSON.stringify(r.data));
  return r.data.deployment;
}

function pullRequest(action, number, branch, sha) {
  return deliver('pull_request', {
    action,
    number,
    pull_request: {number, title: `PR ${number}`, user: {login: 'e2e'}, head: {ref: branch, sha}},
    repository,
  });
}

async function finalOf(id) {
  return waitFor(`deployment ${id} to finish`, async () => {
    const r = await api(platform, 'GET', `/v1/deployments/${id}`);
    return ['ready', 'failed', 'canceled'].includes(r.data?.status) ? r.data : null;
  });
}

async function ready(id) {
  const d = await finalOf(id);
  assert.equal(d.status, 'ready', `${JSON.stringify(d)}\n${platform.logs()}`);
  return d;
}

// The site a label serves: its <h1>, or the status when it serves none.
async function served(label) {
  const r = await site(platform, label);
  return r.status === 200 ? (/<h1>(.*)<\/h1>/.exec(r.body) || [])[1] : r.status;
}

describe('git push -> deployed (signed GitHub webhooks)', {concurrency: false}, () => {
  before(async () => {
    platform = await startPlatform({binDir, repoRoot});
    work = gitRepo(plainSite('v1'));
    bare = tempDir('dp-e2e-bare-');
    temps.push(work, bare);
    execFileSync('git', ['clone', '-q', '--bare', work, bare], {stdio: 'pipe'});
    git('remote', 'add', 'origin', bare);
    const made = await api(platform, 'POST', '/v1/projects', {
      name: project,
      git_url: `file://${bare}`,
      production_branch: 'main',
      cancel_superseded: true,
    });
    assert.equal(made.status, 201, JSON.stringify(made.data));
    const rotated = await api(platform, 'POST', `/v1/projects/${project}/webhook-secret`);
    assert.equal(rotated.status, 201, JSON.stringify(rotated.data));
    secret = rotated.data.secret;
    statusServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        statuses.push({method: req.method, url: req.url, headers: req.headers, body: JSON.parse(body)});
        res.writeHead(201, {'content-type': 'application/json'});
        res.end('{}');
      });
    });
    await new Promise((resolve) => statusServer.listen(0, '127.0.0.1', resolve));
    const forge = await api(platform, 'PUT', `/v1/projects/${project}/forge`, {
      forge: 'github',
      api_url: `http://127.0.0.1:${statusServer.address().port}`,
      repository: 'e2e/hooked',
      token: 'e2e-forge-token',
    });
    assert.equal(forge.status, 200, JSON.stringify(forge.data));
  });
  after(cleanUp);

  it('answers a ping, refuses a wrong signature', async () => {
    assert.equal((await deliver('ping', {zen: 'Keep it logically awesome.'})).status, 200);
    const forged = await fetch(`${platform.api}/v1/webhooks/github/${project}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': 'sha256=' + '0'.repeat(64),
      },
      body: '{}',
    });
    assert.equal(forged.status, 401);
    assert.equal((await forged.json()).error.code, 'unauthorized');
  });

  it('a push to main updates production', async () => {
    const sha = pushVersion('main', 'v2');
    const d = await pushEvent('main', sha, 'version v2');
    assert.equal(d.target, 'production');
    await ready(d.id);
    assert.equal(await served(project), 'site v2');
    // The commit's status on the forge: pending when the build started, then success, each
    // the documented request (POST /repos/{owner}/{repo}/statuses/{sha}, a bearer token).
    const mine = () => statuses.filter((r) => r.url === `/repos/e2e/hooked/statuses/${sha}`);
    await waitFor('the success status', async () => mine().some((r) => r.body.state === 'success'),
                  60_000);
    assert.deepEqual(mine().map((r) => r.body.state), ['pending', 'success']);
    for (const r of mine()) {
      assert.equal(r.method, 'POST');
      assert.equal(r.headers.authorization, 'Bearer e2e-forge-token');
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.body.target_url, d.url);
      assert.equal(r.body.context, 'deploy-platform');
    }
  });

  it('a push to feature/x serves a preview at its branch alias; production is unchanged',
     async () => {
       const sha = pushVersion('feature/x', 'feature');
       const d = await pushEvent('feature/x', sha, 'version feature');
       assert.equal(d.target, 'preview');
       // `<project>--feature-x--<hash>`: the slug lost the '/', so the alias is hashed.
       featureAlias = new URL(d.preview_urls[0]).hostname.split('.')[0];
       assert.match(featureAlias, new RegExp(`^${project}--feature-x--[0-9a-z]{7}$`));
       await ready(d.id);
       assert.equal(await served(featureAlias), 'site feature');
       assert.equal(await served(project), 'site v2');
     });

  it('a pull request gets its own alias, which closing it removes', async () => {
    const sha = git('rev-parse', 'feature/x');
    const opened = await pullRequest('opened', 7, 'feature/x', sha);
    assert.equal(opened.status, 202, JSON.stringify(opened.data));
    await ready(opened.data.deployment.id);
    assert.equal(await served(`${project}--pr-7`), 'site feature');
    const closed = await pullRequest('closed', 7, 'feature/x', sha);
    assert.equal(closed.status, 200, JSON.stringify(closed.data));
    assert.equal(closed.data.removed, true);
    // The proxy drops the alias on the removal's event (or its alias TTL).
    await waitFor('the pull request alias to go', async () => (await served(`${project}--pr-7`)) === 404,
                  60_000);
    assert.equal(await served(featureAlias), 'site feature');
    assert.equal(await served(project), 'site v2');
  });

  it('a burst of five pushes ends with the last commit live and at most two builds run',
     async () => {
       // Five pushes, then their five deliveries back to back, as a forge sends them.
       const pushes = ['b1', 'b2', 'b3', 'b4', 'b5'].map((v) => [pushVersion('main', v), v]);
       const ids = [];
       for (const [sha, v] of pushes)
         ids.push((await pushEvent('main', sha, `version ${v}`)).id);
       const last = await ready(ids.at(-1));
       assert.equal(last.branch, 'main');
       assert.equal(await served(project), 'site b5');
       const finals = [];
       for (const id of ids)
         finals.push(await finalOf(id));
       // A build ran when the runner started it (started_at); a superseded one the worker
       // dropped from the queue never started.
       const built = finals.filter((d) => d.started_at != null);
       assert.ok(built.length <= 2,
                 `builds run: ${built.length}\n${finals.map((d) => `${d.id} ${d.status} ${d.error ?? ''}`).join('\n')}`);
       for (const d of finals.slice(0, -1))
         assert.notEqual(d.status, 'failed', JSON.stringify(d));
     });
});
