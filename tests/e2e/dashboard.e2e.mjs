// The dashboard in headless Chromium (Debian's chromium driven by playwright-core): deploy a
// fixture repository from the page's form, see its log lines stream in and the status "ready".
// Usage: node tests/e2e/dashboard.e2e.mjs <build dir> <repo root>
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {after, before, describe, it} from 'node:test';
import {chromium} from 'playwright-core';

import {commitAll, gitRepo, locations, plainSite, site, startPlatform, waitFor} from './platform.mjs';

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

  // A page of the dashboard that collects what goes wrong in it: script errors, console errors
  // and failed requests (but the browser's own /favicon.ico).
  async function openDashboard() {
    const page = await browser.newPage();
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
    await page.goto(`${platform.api}/`);
    return {page, problems};
  }

  // Waits for each locator in turn; a wait that fails says what the page showed and what the
  // services logged.
  async function waitAll(page, problems, locators) {
    for (const w of locators) {
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
  }

  async function deployFromForm(page, gitUrl, project) {
    await page.fill('#git-url', gitUrl);
    await page.fill('#project-name', project);
    await page.click('#deploy button[type=submit]');
  }

  it('deploys a repository from the form, streams its log and shows ready', async () => {
    repo = gitRepo(plainSite('dash'));
    const {page, problems} = await openDashboard();
    await deployFromForm(page, `file://${repo}`, 'dash');

    // The project is selected, the log streams in (the build's own output included), and the
    // stream's final status shows; the deployments table shows it ready and in production.
    await waitAll(page, problems, [
      page.locator('#projects li', {hasText: 'dash'}),
      page.locator('#log div', {hasText: /^cloning file:\/\//}).first(),
      page.locator('#log div', {hasText: /^built version dash with /}),
      page.locator('#log div', {hasText: /^deployment ready$/}),
      page.locator('#deployments tr.live td.status.ready'),
    ]);
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

    // "redeploy without cache" queues a build that restores nothing; its row says so.
    await page.locator('#redeploy-no-cache').click();
    await waitAll(page, problems, [
      page.locator('#deployments td.status.ready', {hasText: '(cache off)'}),
    ]);
    assert.equal(await page.textContent('#error'), '');
    await page.close();
  });

  it('rolls back with the promote button, cancels a running build, shows colored output',
     async () => {
       // A second version goes live; promoting the first one again is the rollback.
       fs.writeFileSync(`${repo}/version.txt`, 'dash-2\n');
       commitAll(repo, 'dash-2');
       const {page, problems} = await openDashboard();
       await deployFromForm(page, `file://${repo}`, 'dash');
       await waitAll(page, problems, [page.locator('#log div', {hasText: /^deployment ready$/})]);
       await waitFor('dash-2 to be served',
                     async () => (await site(platform, 'dash', '/')).body.includes('<h1>site dash-2</h1>'),
                     30_000, 100);
       const older = page.locator('#deployments tr:not(.live) button', {hasText: 'promote'});
       await waitAll(page, problems, [older.first()]);
       await older.first().click();
       await waitFor('the rollback to be served',
                     async () => (await site(platform, 'dash', '/')).body.includes('<h1>site dash</h1>'),
                     30_000, 100);

       // The filter asks the API for a branch, target or status: this project has no preview,
       // and every row it lists as ready is ready.
       const rows = page.locator('#deployments tr');
       await page.selectOption('#filter-target', 'preview');
       await waitFor('the preview filter to empty the table', async () => (await rows.count()) === 0,
                     10_000, 100);
       await page.selectOption('#filter-target', 'production');
       await page.selectOption('#filter-status', 'ready');
       await waitFor('only ready production deployments', async () => {
         const n = await rows.count();
         return n >= 2 && n === await page.locator('#deployments td.status.ready').count();
       }, 10_000, 100);
       await page.fill('#filter-branch', 'no-such-branch');
       await page.press('#filter-branch', 'Enter');
       await waitFor('an unknown branch to empty the table', async () => (await rows.count()) === 0,
                     10_000, 100);
       await page.fill('#filter-branch', '');
       await page.selectOption('#filter-target', '');
       await page.selectOption('#filter-status', '');
       await page.press('#filter-branch', 'Enter');
       await waitFor('the whole list back', async () => (await rows.count()) >= 2, 10_000, 100);

       // A build that prints a green line, then waits to be canceled from its row.
       const slow = gitRepo({
         'package.json': JSON.stringify(
             {name: 'slow', version: '1.0.0', private: true, scripts: {build: 'node build.mjs'}}),
         'build.mjs': `console.log('\\x1b[32mwaiting for cancel\\x1b[0m');\nsetTimeout(() => {}, 300000);\n`,
       });
       try {
         await deployFromForm(page, `file://${slow}`, 'slow');
         const green = page.locator('#log div span', {hasText: 'waiting for cancel'});
         await waitAll(page, problems, [green]);
         assert.equal(await green.evaluate((e) => getComputedStyle(e).color), 'rgb(85, 204, 85)');
         const cancel = page.locator('#deployments button', {hasText: 'cancel'});
         await waitAll(page, problems, [cancel.first()]);
         await cancel.first().click();
         await waitAll(page, problems, [
           page.locator('#deployments td.status.canceled'),
           page.locator('#log div', {hasText: /^deployment canceled/}),
         ]);
       } finally {
         fs.rmSync(slow, {recursive: true, force: true});
       }
       assert.equal(await page.textContent('#error'), '');
       assert.deepEqual(problems, []);
       await page.close();
     });
});
