// What the e2e tests and the benchmark share: start deploy/local/run.sh over a fresh DATA_DIR, its
// services on ports they choose (port 0) and report, make git repositories of fixture sites,
// deploy, follow the log stream (SSE), and stop everything (even after a failure). Node 20
// built-ins only.
import {execFileSync, spawn} from 'node:child_process';
import {createHash, randomBytes} from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tempDir(prefix) { return fs.mkdtempSync(path.join(os.tmpdir(), prefix)); }

// The port in the `field` (listen, admin) of a service's JSON "listening" log line, or null while
// there is none: the services listen on port 0 and say which port they bound (as tests/harness's
// reported_port reads it).
function reportedPort(logFile, field) {
  let text;
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch {
    return null;  // not started yet
  }
  for (const line of text.split('\n').slice(0, -1)) {  // the last one may be still being written
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    const address = entry?.[field];
    if (typeof entry?.msg !== 'string' || !entry.msg.endsWith(' listening') ||
        typeof address !== 'string')
      continue;
    const port = Number(address.slice(address.lastIndexOf(':') + 1));
    if (!address.includes(':') || !Number.isInteger(port) || port <= 0 || port > 65535)
      throw new Error(`${logFile}: "${address}" is not host:port with a port`);
    return port;
  }
  return null;
}

// Processes of this platform instance: every one carries the DATA_DIR path in its environment
// (STORAGE_URL, or the marker run.sh is started with), builds included.
function processesOf(marker) {
  const found = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid)
      continue;
    try {
      if (fs.readFileSync(`/proc/${pid}/environ`, 'latin1').includes(marker)) {
        found.push(Number(pid));
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

// pid -> [parent pid, start time] from /proc/<pid>/stat (the command name may hold spaces);
// zombies are left out: they have ended, only their parent has not reaped them yet.
function processTable() {
  const table = new Map();
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid))
      continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] !== 'Z')
        table.set(Number(pid), [Number(fields[1]), fields[19]]);
    } catch {
      // gone
    }
  }
  return table;
}

// Every process below `root` now (builds, bubblewrap and npm included), as "pid:start time".
function descendants(root) {
  const table = processTable();
  const found = new Set();
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, [ppid, start]] of table) {
      const key = `${pid}:${start}`;
      if ((ppid === root || [...found].some((k) => k.startsWith(`${ppid}:`))) && !found.has(key)) {
        found.add(key);
        grew = true;
      }
    }
  }
  return found;
}

// Starts run.sh (with `args`, e.g. ['--s3']); resolves once the API is ready and the proxy answers.
export async function startPlatform({binDir, repoRoot, env = {}, quiet = true, args = []}) {
  const dataDir = tempDir('dp-e2e-data-');
  const marker = `DP_E2E_DATA_DIR=${dataDir}`;
  const child = spawn(path.join(repoRoot, 'deploy/local/run.sh'), args, {
    env: {
      ...process.env,
      DP_E2E_DATA_DIR: dataDir,
      DP_BIN_DIR: binDir,
      DATA_DIR: dataDir,
      API_LISTEN: '127.0.0.1:0',
      PROXY_LISTEN: '127.0.0.1:0',
      ADMIN_LISTEN: '127.0.0.1:0',
      LOG_FORMAT: 'json',
      WORKER_DRAIN_S: '2',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (d) => {
    output += d;
    if (!quiet)
      process.stderr.write(d);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited =
      new Promise((resolve) => child.on('exit', (code, signal) => resolve({code, signal})));
  let exitStatus = null;
  exited.then((s) => (exitStatus = s));

  // api, proxy and proxyPort are known once the services report their ports.
  const p = {
    api: null,
    proxy: null,
    proxyPort: null,
    dataDir,
    child,
    output: () => output,
    logs: () => {
      const dir = path.join(dataDir, 'logs');
      if (!fs.existsSync(dir))
        return '';
      return fs.readdirSync(dir)
          .map(
              (f) => `==> ${f} <==\n${
                  fs.readFileSync(path.join(dir, f), 'utf8').split('\n').slice(-40).join('\n')}`)
          .join('\n');
    },
    // SIGTERM to run.sh; returns what is left of the platform's processes afterwards (killed):
    // the processes that were below run.sh when it was asked to stop, and any process carrying
    // this DATA_DIR in its environment.
    async stop(timeoutMs = 60_000) {
      let before = new Set();
      if (exitStatus === null) {
        before = descendants(child.pid);
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(t);
      }
      // Builds die with the worker (PDEATHSIG): give them a moment before counting.
      let left = [];
      for (let i = 0; i < 20; i++) {
        const table = processTable();
        const survivors = [...before]
                              .map((k) => k.split(':'))
                              .filter(([pid, start]) => table.get(Number(pid))?.[1] === start)
                              .map(([pid]) => Number(pid));
        left = [
          ...new Set(
              survivors.concat(processesOf(marker), processesOf(`file://${dataDir}/storage`))),
        ];
        if (left.length === 0)
          break;
        await sleep(100);
      }
      const described = left.map((pid) => {
        try {
          return `${pid} ${
              fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ')}`;
        } catch {
          return String(pid);
        }
      });
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      return {status: exitStatus, left: described, had: before.size};
    },
    remove() { fs.rmSync(dataDir, {recursive: true, force: true}); },
  };

  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exitStatus !== null) {
      throw new Error(
          `run.sh exited early (${JSON.stringify(exitStatus)}):\n${output}\n${p.logs()}`);
    }
    if (Date.now() > deadline) {
      await p.stop();
      throw new Error(`the platform did not become ready:\n${output}\n${p.logs()}`);
    }
    const apiPort = reportedPort(path.join(dataDir, 'logs', 'api-server.log'), 'listen');
    const proxyPort = reportedPort(path.join(dataDir, 'logs', 'proxy.log'), 'listen');
    if (apiPort === null || proxyPort === null) {
      await sleep(200);
      continue;
    }
    Object.assign(
        p, {api: `http://127.0.0.1:${apiPort}`, proxy: `http://127.0.0.1:${proxyPort}`, proxyPort});
    try {
      const ready = await fetch(`${p.api}/readyz`);
      const proxied = await fetch(`${p.proxy}/`, {headers: {host: 'none.localhost'}});
      if (ready.ok && proxied.status === 404)
        break;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  return p;
}

// A git repository (one commit) holding `files` ({relative path: content}).
export function gitRepo(files, dir = tempDir('dp-e2e-repo-')) {
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), {recursive: true});
    fs.writeFileSync(path.join(dir, name), content);
  }
  commitAll(dir, 'initial');
  return dir;
}

export function commitAll(dir, message) {
  const git = (...args) => execFileSync('git', args, {
    cwd: dir,
    stdio: 'pipe',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'e2e',
      GIT_AUTHOR_EMAIL: 'e2e@example.invalid',
      GIT_COMMITTER_NAME: 'e2e',
      GIT_COMMITTER_EMAIL: 'e2e@example.invalid',
    },
  });
  if (!fs.existsSync(path.join(dir, '.git')))
    git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '-m', message);
}

// A site without dependencies: `npm run build` writes dist/ with index.html, style.css, app.js
// and a fingerprinted assets/app.<hash>.js, each carrying `version`.
export function plainSite(version) {
  const build = `import fs from 'node:fs';
import { createHash } from 'node:crypto';
const version = fs.readFileSync('version.txt', 'utf8').trim();
fs.rmSync('dist', { recursive: true, force: true });
fs.mkdirSync('dist/assets', { recursive: true });
const asset = 'console.log("asset ' + version + '");\\n';
// A hash part the platform recognizes as a fingerprint: hex with a digit and a letter.
const sha = createHash('sha256').update(asset).digest('hex');
let i = 0;
while (!(/[a-f]/.test(sha.slice(i, i + 12)) && /[0-9]/.test(sha.slice(i, i + 12)))) i++;
const name = 'assets/app.' + sha.slice(i, i + 12) + '.js';
fs.writeFileSync('dist/' + name, asset);
fs.writeFileSync('dist/app.js', 'document.title = "site ' + version + '";\\n');
fs.writeFileSync('dist/style.css', 'body { content: "' + version + '"; }\\n');
fs.writeFileSync('dist/index.html', '<!doctype html><html><head><link rel="stylesheet" href="/style.css">' +
  '<script src="/app.js"></script><script src="/' + name + '"></script></head>' +
  '<body><h1>site ' + version + '</h1></body></html>\\n');
console.log('built version ' + version + ' with ' + name);
`;
  return {
    'package.json': JSON.stringify(
        {name: 'plain-site', version: '1.0.0', private: true, scripts: {build: 'node build.mjs'}},
        null,
        2,
        ),
    'package-lock.json': JSON.stringify(
        {
          name: 'plain-site',
          version: '1.0.0',
          lockfileVersion: 3,
          requires: true,
          packages: {'': {name: 'plain-site', version: '1.0.0'}},
        },
        null,
        2,
        ),
    'build.mjs': build,
    'version.txt': `${version}\n`,
  };
}

// What plainSite(version) serves: {path: body} (the fingerprinted name is found in index.html).
export function assetPath(indexHtml) {
  const m = /src="\/(assets\/app\.[0-9a-f]+\.js)"/.exec(indexHtml);
  return m ? `/${m[1]}` : null;
}

export async function api(p, method, route, body) {
  const res = await fetch(p.api + route, {
    method,
    headers: body ? {'content-type': 'application/json'} : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  return {status: res.status, data};
}

// GET through the proxy with Host <label>.localhost. Node's fetch does not let us set Host, so
// this uses node:http.
export function site(p, label, route = '/') {
  return new Promise((resolve, reject) => {
    const req = http.get(
        {
          host: '127.0.0.1',
          port: p.proxyPort,
          path: route,
          headers: {host: `${label}.localhost`},
          agent: false
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on(
              'end',
              () => resolve({
                status: res.statusCode,
                headers: res.headers,
                body: Buffer.concat(chunks).toString('utf8')
              }),
          );
          res.on('error', reject);
        },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${label}${route} timed out`)));
  });
}

// Follows GET /v1/deployments/{id}/logs/stream (SSE) to its end: {events: [{event, id, data}],
// ended}.
export async function followLogs(p, id, {timeoutMs = 300_000, onEvent} = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  const events = [];
  try {
    const res = await fetch(`${p.api}/v1/deployments/${id}/logs/stream`, {
      headers: {accept: 'text/event-stream'},
      signal: ctl.signal,
    });
    if (res.status !== 200)
      throw new Error(`log stream: HTTP ${res.status}: ${await res.text()}`);
    const contentType = res.headers.get('content-type');
    const decoder = new TextDecoder();
    let buf = '';
    let cur = {data: []};
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk, {stream: true});
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line === '') {
          if (cur.data.length || cur.event) {
            const e = {event: cur.event || 'message', id: cur.id, data: cur.data.join('\n')};
            events.push(e);
            if (onEvent)
              onEvent(e);
          }
          cur = {data: []};
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'data')
            cur.data.push(value);
          else if (field === 'event')
            cur.event = value;
          else if (field === 'id')
            cur.id = value;
        }
      }
    }
    return {events, contentType, ended: true};
  } finally {
    clearTimeout(timer);
  }
}

export async function waitFor(what, fn, timeoutMs = 300_000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v)
      return v;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

export const randomName = (prefix) => `${prefix}-${randomBytes(3).toString('hex')}`;
export const sha256 = (s) => createHash('sha256').update(s).digest('hex');

// The binary tree and the checkout: argv (node x.mjs <bin dir> <repo root>) or the environment.
export function locations(metaUrl) {
  const here = path.dirname(new URL(metaUrl).pathname);
  const repoRoot =
      path.resolve(process.argv[3] || process.env.DP_REPO_ROOT || path.join(here, '../..'));
  const binDir =
      path.resolve(process.argv[2] || process.env.DP_BIN_DIR || path.join(repoRoot, 'build/asan'));
  return {repoRoot, binDir};
}
