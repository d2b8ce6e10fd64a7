// The deployment page (#/deployments/<id>) in headless Chromium: a running build's log followed
// live in phases with their timings, ANSI colours as classes, search, a reload mid-build without
// a duplicate or a missing line, the cancel button, a failed build's jump to its first error, a
// ?line=N link, and a 20,000-line log. Screenshots at 1280x800 and 390x844 go to
// <build dir>/e2e-screenshots/deployment/.
// Usage: node tests/e2e/deployment.e2e.mjs <build dir> <repo root>
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {after, before, describe, it} from 'node:test';
import {chromium} from 'playwright-core';

import {api, followLogs, gitRepo, locations, startPlatform, waitFor} from './platform.mjs';

const {repoRoot, binDir} = locations(import.meta.url);
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
// Beside the dashboard test's own (it empties its directory when it starts).
const screenshots = path.join(binDir, 'e2e-screenshots', 'deployment');
const phaseOrder = ['clone', 'restore_cache', 'install', 'build', 'upload', 'save_cache', 'go_live'];
let platform = null;
let browser = null;
const repos = [];

async function cleanUp() {
  if (browser)
    await browser.close().catch(() => {});
  browser = null;
  if (platform) {
    await platform.stop();
    platform.remove();
  }
  platform = null;
  for (const r of repos.splice(0))
    fs.rmSync(r, {recursive: true, force: true});
}

const watchdog = setTimeout(async () => {
  console.error('deployment.e2e: overall time limit reached; cleaning up');
  await cleanUp();
  process.exit(1);
}, 540_000);
watchdog.unref();

// A repository whose `npm run build` runs `script` (build.mjs) and has no dependency.
function buildRepo(name, script) {
  const dir = gitRepo({
    'package.json': JSON.stringify({name, version: '1.0.0', private: true, scripts: {build: 'node build.mjs'}}),
    'package-lock.json': JSON.stringify({name, version: '1.0.0', lockfileVersion: 3, requires: true,
                                         packages: {'': {name, version: '1.0.0'}}}),
    'build.mjs': `import fs from 'node:fs';\nconst sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n${script}\n`,
  });
  repos.push(dir);
  return dir;
}
const writeSite = `fs.mkdirSync('dist', {recursive: true});\nfs.writeFileSync('dist/index.html', '<h1>ok</h1>');`;

// 40 lines a quarter of a second apart: the build phase lasts at least 10 s.
const liveScript = `console.log('\\x1b[32mgreen ok\\x1b[0m then \\x1b[1;31mbold red\\x1b[0m');
for (let i = 1; i <= 40; i++) { console.log('tick ' + i); await sleep(250); }
${writeSite}`;
const brokenScript = `console.log('compiling 3 pages');
console.log('\\x1b[33mwarning: an unused variable\\x1b[0m');
console.error('Error: Cannot find module ./missing.js');
console.error('    at build.mjs:5');
process.exit(1);`;
const loudScript = `for (let i = 1; i <= 20000; i++) console.log('loud line ' + i + ' \\x1b[36mcyan\\x1b[0m');
${writeSite}`;

async function deploy(repo, project) {
  const r = await api(platform, 'POST', '/v1/deployments', {git_url: `file://${repo}`, project});
  assert.equal(r.status, 202, JSON.stringify(r.data));
  return r.data.id;
}

// Every event of a deployment's logbook, through the JSON API (pages of at most 10,000).
async function logbook(id) {
  const events = [];
  for (;;) {
    const r = await api(platform, 'GET', `/v1/deployments/${id}/logs?limit=10000&since=${events.length ? events.at(-1).seq : 0}`);
    assert.equal(r.status, 200, JSON.stringify(r.data));
    if (r.data.events.length === 0) return events;
    events.push(...r.data.events);
  }
}

// "850 ms", "12.3 s", "1 min 05 s" in milliseconds.
function parseDuration(text) {
  let m;
  if ((m = /^(\d+) ms$/.exec(text))) return Number(m[1]);
  if ((m = /^([\d.]+) s$/.exec(text))) return Number(m[1]) * 1000;
  if ((m = /^(\d+) min (\d+) s$/.exec(text))) return (Number(m[1]) * 60 + Number(m[2])) * 1000;
  throw new Error(`not a duration: "${text}"`);
}

describe('deployment page in headless Chromium', {concurrency: false}, () => {
  before(async () => {
    fs.rmSync(screenshots, {recursive: true, force: true});
    fs.mkdirSync(screenshots, {recursive: true});
    console.log(`deployment.e2e: screenshots in ${screenshots}`);
    platform = await startPlatform({binDir, repoRoot});
    // We run as root: Chromium's own sandbox needs an unprivileged user.
    browser = await chromium.launch({executablePath: chromiumPath, headless: true, args: ['--no-sandbox']});
  });
  after(cleanUp);

  // The page of a deployment, collecting what goes wrong in it: script errors, console errors,
  // failed requests.
  async function openDeployment(id, {query = '', viewport = {width: 1280, height: 800}} = {}) {
    const page = await browser.newPage({viewport});
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
        problems.push(`console: ${m.text()}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico')
        problems.push(`HTTP ${r.status()} ${r.url()}`);
    });
    page.setDefaultTimeout(60_000);
    await page.goto(`${platform.api}/#/deployments/${id}${query}`);
    return {page, problems};
  }

  async function waitAll(page, problems, locators, timeout = 240_000) {
    for (const w of locators) {
      try {
        await w.waitFor({timeout});
      } catch (e) {
        const shown = await page.evaluate(() => document.querySelector('main').innerText);
        throw new Error(`${e.message}\npage:\n${shown.slice(-4000)}\n${problems.join('\n')}\n${platform.logs()}`);
      }
    }
  }

  // Nothing wider than a phone's screen.
  async function assertFitsPhone(page, name) {
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `${name} is ${wide} px wide on a 390 px phone`);
  }

  // The line numbers the page shows, in order.
  const shownSeqs = (page) => page.locator('.log .line .ln').allTextContents().then((t) => t.map(Number));
  const line = (page, text) => page.locator('.log .line', {hasText: text});
  const badge = (page, status) => page.locator(`.deployment-head .badge.status.${status}`);

  it('follows a running build live in phases, with colours, search and a reload mid-build', async () => {
    const repo = buildRepo('live', liveScript);
    const id = await deploy(repo, 'live');
    const {page, problems} = await openDeployment(id);

    // Lines arrive while the build runs: the record (polled) still says it runs.
    await waitAll(page, problems, [line(page, /^\d+tick 3$/)]);
    assert.equal(await page.locator('.deployment-head .badge.status.busy').count(), 1,
                 await page.locator('.deployment-head').textContent());
    assert.equal(await page.locator('.deployment-head .cancel-build').count(), 1);
    // The running phase is the open one; the phases before it are closed.
    assert.equal(await page.locator('details.phase[data-phase=build]').getAttribute('open'), '');
    assert.equal(await page.locator('details.phase[data-phase=clone]').getAttribute('open'), null);
    await page.screenshot({path: path.join(screenshots, 'deployment-live-desktop.png')});
    await page.setViewportSize({width: 390, height: 844});
    await page.screenshot({path: path.join(screenshots, 'deployment-live-phone.png')});
    await assertFitsPhone(page, 'the live log');
    await page.setViewportSize({width: 1280, height: 800});

    // ANSI colours are classes on spans; the escape sequences themselves are gone.
    const green = page.locator('.log .line .text span.ansi-fg-2', {hasText: 'green ok'});
    const red = page.locator('.log .line .text span.ansi-fg-1.ansi-bold', {hasText: 'bold red'});
    await waitAll(page, problems, [green, red]);
    assert.doesNotMatch(await line(page, 'green ok').textContent(), /\x1b|\[32m/);

    // Reload mid-build: the page replays from the start and follows on.
    await waitAll(page, problems, [line(page, /^\d+tick 8$/)]);
    const before = await shownSeqs(page);
    assert.deepEqual(before, [...new Set(before)], 'a seq shown twice before the reload');
    await page.reload();
    // The stream's final status (after its last line) marks the last phase with it.
    await waitAll(page, problems, [badge(page, 'ready'), page.locator('details.phase.ready')]);
    const events = await logbook(id);
    const seqs = await shownSeqs(page);
    assert.deepEqual(seqs, events.map((e) => e.seq), 'the page shows each logbook line once, in order');
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
    for (let i = 1; i <= 40; i++)
      assert.equal(await line(page, new RegExp(`^\\d+tick ${i}$`)).count(), 1, `tick ${i}`);

    // Phases in the runner's order, each with its duration; the build's is at least its 10 s of
    // ticks. A finished build's phases are closed.
    const phases = await page.locator('details.phase').evaluateAll((ds) => ds.map((d) => d.dataset.phase));
    assert.deepEqual(phases, phaseOrder.filter((p) => phases.includes(p)), phases.join());
    for (const p of ['clone', 'build', 'upload', 'go_live'])
      assert.ok(phases.includes(p), `phase ${p} in ${phases}`);
    assert.deepEqual(events.map((e) => e.phase).filter((p, i, a) => p && p !== a[i - 1]), phases);
    const durations = {};
    for (const p of phases)
      durations[p] = parseDuration(await page.locator(`details.phase[data-phase=${p}] .phase-duration`).textContent());
    assert.ok(durations.build >= 10_000, JSON.stringify(durations));
    assert.deepEqual(await page.locator('details.phase[open]').evaluateAll((ds) => ds.map((d) => d.dataset.phase)), []);
    assert.equal(await page.locator('.deployment-head .cancel-build').count(), 0);

    // Search: the matching line is marked and shown (its phase opens), Enter and Shift+Enter
    // move through the matches, Escape ends the search.
    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'log-search');
    await page.keyboard.type('tick 17');
    await waitAll(page, problems, [page.locator('.log .line.current', {hasText: 'tick 17'})]);
    assert.equal(await page.locator('.log-count').textContent(), '1/1');
    assert.equal(await page.locator('details.phase[data-phase=build]').getAttribute('open'), '');
    await page.fill('#log-search', 'TICK');
    await waitAll(page, problems, [page.locator('.log-count', {hasText: '1/40'})]);
    await page.press('#log-search', 'Enter');
    await waitAll(page, problems, [page.locator('.log .line.current', {hasText: /tick 2$/})]);
    assert.equal(await page.locator('.log-count').textContent(), '2/40');
    await page.press('#log-search', 'Shift+Enter');
    await page.press('#log-search', 'Shift+Enter');
    assert.equal(await page.locator('.log-count').textContent(), '40/40');
    assert.equal(await page.locator('.log .line.match').count(), 40);
    await page.press('#log-search', 'Escape');
    assert.equal(await page.locator('.log .line.match').count(), 0);
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('cancels a running build from its page', async () => {
    const id = await deploy(buildRepo('doomed', liveScript), 'doomed');
    const {page, problems} = await openDeployment(id);
    await waitAll(page, problems, [line(page, /^\d+tick 2$/)]);
    await page.locator('.deployment-head .cancel-build').click();
    await waitAll(page, problems, [badge(page, 'canceled'), page.locator('details.phase.canceled[open]')]);
    assert.equal(await page.locator('.log .line', {hasText: /tick 40$/}).count(), 0);
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('jumps to a failed build\'s first error, and opens a ?line=N link at its line', async () => {
    const id = await deploy(buildRepo('broken', brokenScript), 'broken');
    await followLogs(platform, id);
    const {page, problems} = await openDeployment(id);
    await waitAll(page, problems, [badge(page, 'failed'), page.locator('details.phase.failed[open][data-phase=build]')]);
    const jump = page.locator('.jump-error');
    assert.equal(await jump.isEnabled(), true);
    await jump.focus();
    await page.keyboard.press('Enter');
    const target = page.locator('.log .line.target');
    await waitAll(page, problems, [target]);
    assert.match(await target.textContent(), /^\d+Error: Cannot find module \.\/missing\.js$/);
    assert.match(await target.getAttribute('class'), /\bstderr\b/);
    // Scrolled into the log's view.
    const [box, shown] = [await page.locator('.log').boundingBox(), await target.boundingBox()];
    assert.ok(shown.y >= box.y && shown.y + shown.height <= box.y + box.height, JSON.stringify({box, shown}));
    const n = Number(await target.locator('.ln').textContent());
    assert.equal(await target.locator('.ln').getAttribute('href'), `#/deployments/${id}?line=${n}`);
    await page.screenshot({path: path.join(screenshots, 'deployment-failed-desktop.png')});
    assert.deepEqual(problems, []);
    await page.close();

    // The line's link, opened on a phone: the line is marked and in view.
    const phone = await openDeployment(id, {query: `?line=${n}`, viewport: {width: 390, height: 844}});
    const marked = phone.page.locator('.log .line.target');
    await waitAll(phone.page, phone.problems, [marked]);
    assert.equal(await marked.locator('.ln').textContent(), String(n));
    assert.match(await marked.textContent(), /Error: Cannot find module/);
    const onScreen = await marked.boundingBox();
    assert.ok(onScreen.y >= 0 && onScreen.y + onScreen.height <= 844, JSON.stringify(onScreen));
    await phone.page.screenshot({path: path.join(screenshots, 'deployment-failed-phone.png')});
    await assertFitsPhone(phone.page, 'the failed build');
    // Another line's number moves the mark and the address, not the page.
    const other = phone.page.locator('.log .line', {hasText: 'compiling 3 pages'});
    const m = await other.locator('.ln').textContent();
    await other.locator('.ln').click();
    await waitAll(phone.page, phone.problems, [phone.page.locator('.log .line.target', {hasText: 'compiling 3 pages'})]);
    assert.equal(await phone.page.locator('.log .line.target').count(), 1);
    assert.match(phone.page.url(), new RegExp(`#/deployments/${id}\\?line=${m}$`));
    assert.deepEqual(phone.problems, []);
    await phone.page.close();
  });

  it('shows a 20,000-line log', async () => {
    const id = await deploy(buildRepo('loud', loudScript), 'loud');
    await followLogs(platform, id);
    const events = await logbook(id);
    const started = Date.now();
    const {page, problems} = await openDeployment(id);
    await waitAll(page, problems, [badge(page, 'ready')]);
    await waitFor('every line on the page', async () => (await page.locator('.log .line').count()) === events.length,
                  120_000, 100);
    // A measurement, not a goal: printed for the reader.
    console.log(`deployment.e2e: ${events.length} log lines shown in ${Date.now() - started} ms`);
    assert.ok(events.length > 20_000);
    assert.equal(await page.locator('.log .line .ansi-fg-6').count(), 20_000);
    await page.fill('#log-search', 'loud line 19999 ');
    await waitAll(page, problems, [page.locator('.log .line.current', {hasText: 'loud line 19999 cyan'})]);
    assert.deepEqual(problems, []);
    await page.close();
  });
});
