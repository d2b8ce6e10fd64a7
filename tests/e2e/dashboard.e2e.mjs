// The dashboard in headless Chromium (Debian's chromium driven by playwright-core): deploy a
// fixture repository from the page's form, see its log lines stream in and the status "ready".
// Usage: node tests/e2e/dashboard.e2e.mjs <build dir> <repo root>
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {after, before, describe, it} from 'node:test';
import {chromium} from 'playwright-core';

import {gitRepo, locations, plainSite, site, startPlatform} from './platform.mjs';

const {repoRoot, binDir} = locations(import.meta.url);
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
let platform = null;
let browser = null;
let repo = null;

async function cleanUp() {
  if (browser)
    await browser.close().catch(() => {});
  browser = null;
  if (platform) {
    await platform.stop();
    platform.remove();
  }
  platform = null;
  if (repo)
    fs.rmSync(repo, {recursive: true, force: true});
}

const watchdog = setTimeout(async () => {
  console.error('dashboard.e2e: overall time limit reached; cleaning up');
  await cleanUp();
  process.exit(1);
}, 540_000);
watchdog.unref();

describe('dashboard in headless Chromium', {concurrency: false}, () => {
  before(async () => {
    platform = await startPlatform({binDir, repoRoot});
    // We run as root: Chromium's own sandbox needs an unprivileged user.
    browser = await chromium.launch(
        {executablePath: chromiumPath, headless: true, args: ['--no-sandbox']});
  });
  after(cleanUp);

  it('deploys a repository from the form, streams its log and shows ready', async () => {
    repo = gitRepo(plainSite('dash'));
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    // Failed requests are checked by URL below (the browser's own /favicon.ico is a 404).
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
        problems.push(`console: ${m.text()}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico')
        problems.push(`HTTP ${r.status()} ${r.url()}`);
    });
    page.setDefaultTimeout(60_000);

    await page.goto(`${platform.api}/`);
    await page.fill('#git-url', `file://${repo}`);
    await page.fill('#project-name', 'dash');
    await page.click('#deploy button[type=submit]');

    // The project is selected, the log streams in (the build's own output included), and the
    // stream's final status shows; the deployments table shows it ready and in production.
    // A wait that fails says what the page showed and what the services logged.
    const waits = [
      page.locator('#projects li', {hasText: 'dash'}),
      page.locator('#log div', {hasText: /^cloning file:\/\//}).first(),
      page.locator('#log div', {hasText: /^built version dash with /}),
      page.locator('#log div', {hasText: /^deployment ready$/}),
      page.locator('#deployments tr.live td.status.ready'),
    ];
    for (const w of waits) {
      try {
        await w.waitFor({timeout: 240_000});
      } catch (e) {
        const shown = await page.evaluate(
            () => ['error', 'log', 'deployments']
                      .map((id) => document.getElementById(id).innerText)
                      .join('\n---\n'));
        throw new Error(
            `${e.message}\npage:\n${shown}\n${problems.join('\n')}\n${platform.logs()}`);
      }
    }
    const error = await page.textContent('#error');
    assert.equal(error, '', `the page shows an error: ${error}`);
    const lines = await page.locator('#log div').allTextContents();
    assert.ok(lines.length >= 8, `log lines:\n${lines.join('\n')}`);
    assert.ok(lines.some((l) => /^install: skipped \(package\.json declares no/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /^build: running `npm run build`/.test(l)), lines.join('\n'));
    assert.deepEqual(problems, []);

    const served = await site(platform, 'dash', '/');
    assert.equal(served.status, 200);
    assert.match(served.body, /<h1>site dash<\/h1>/);
  });
});
