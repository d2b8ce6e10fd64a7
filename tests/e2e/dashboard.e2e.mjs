// The dashboard in headless Chromium (Debian's chromium driven by playwright-core): the overview,
// the project page (deploy, redeploy without cache, promote, rollback, filter, cancel), the
// settings (an env var masked once saved, a domain listed and the branch it serves changed, hooks,
// the webhook secret, the cache), keyboard navigation, and no CSP violation anywhere. Screenshots
// of every page at desktop (1280x800) and phone (390x844) widths go to
// <build dir>/e2e-screenshots/dashboard/.
// Usage: node tests/e2e/dashboard.e2e.mjs <build dir> <repo root>
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {after, before, describe, it} from 'node:test';
import {chromium} from 'playwright-core';

import {api, commitAll, gitRepo, locations, plainSite, site, startPlatform, waitFor} from './platform.mjs';

const {repoRoot, binDir} = locations(import.meta.url);
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshotDir = path.join(binDir, 'e2e-screenshots', 'dashboard');
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
    fs.rmSync(screenshotDir, {recursive: true, force: true});
    fs.mkdirSync(screenshotDir, {recursive: true});
    console.log(`dashboard.e2e: screenshots in ${screenshotDir}`);
    platform = await startPlatform({binDir, repoRoot});
    // We run as root: Chromium's own sandbox needs an unprivileged user.
    browser = await chromium.launch(
        {executablePath: chromiumPath, headless: true, args: ['--no-sandbox']});
  });
  after(cleanUp);

  // A page of the dashboard that collects what goes wrong in it: script errors, console errors
  // (a CSP violation is one), failed requests, and the securitypolicyviolation events.
  async function openDashboard(hash = '#/', viewport = {width: 1280, height: 800}) {
    const page = await browser.newPage({viewport});
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
        problems.push(`console: ${m.text()}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400)
        problems.push(`HTTP ${r.status()} ${r.url()}`);
    });
    await page.addInitScript(() => {
      window.cspViolations = [];
      document.addEventListener(
          'securitypolicyviolation',
          (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    page.setDefaultTimeout(60_000);
    await page.goto(`${platform.api}/${hash}`);
    return {page, problems};
  }

  async function checkClean(page, problems) {
    assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
    assert.equal(await page.textContent('#error'), '', 'the page shows an error');
    assert.deepEqual(problems, []);
  }

  // Waits for each locator in turn; a wait that fails says what the page showed and what the
  // services logged.
  async function waitAll(page, problems, locators, timeout = 240_000) {
    for (const w of locators) {
      try {
        await w.waitFor({timeout});
      } catch (e) {
        const shown = await page.evaluate(() => document.body.innerText);
        throw new Error(`${e.message}\npage ${page.url()}:\n${shown}\n${problems.join('\n')}\n${
            platform.logs()}`);
      }
    }
  }

  // The page at desktop and phone widths, full length; at the phone's width nothing may be wider
  // than the screen.
  async function screenshots(page, name) {
    await page.setViewportSize({width: 1280, height: 800});
    await page.screenshot({path: path.join(screenshotDir, `${name}-desktop.png`), fullPage: true});
    await page.setViewportSize({width: 390, height: 844});
    await page.screenshot({path: path.join(screenshotDir, `${name}-phone.png`), fullPage: true});
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    const over = await page.evaluate(
        () => [...document.querySelectorAll('body *')]
                  .filter((e) => e.getBoundingClientRect().right > 390)
                  .map((e) => `${e.tagName}#${e.id}.${e.className}: ${e.textContent.slice(0, 40)}`)
                  .slice(0, 5));
    assert.ok(wide <= 390, `${name} is ${wide} px wide on a 390 px phone: ${over.join('; ')}`);
    await page.setViewportSize({width: 1280, height: 800});
  }

  const card = (page, name) => page.locator(`#projects li.project[data-project="${name}"]`);
  const readyRows = (page) => page.locator('#deployments td.status .badge.ready');

  it('deploys from the overview form and shows the project there', async () => {
    repo = gitRepo(plainSite('dash'));
    const {page, problems} = await openDashboard();
    await waitAll(page, problems, [page.locator('#projects li', {hasText: 'No project yet'})]);
    await page.fill('#git-url', `file://${repo}`);
    await page.fill('#project-name', 'dash');
    await page.click('#deploy button[type=submit]');

    // The form opens the new deployment's page, which follows it to ready.
    await page.waitForURL(/#\/deployments\/[0-9a-z]+$/);
    await waitAll(page, problems, [page.locator('#deployment .badge.status.ready')]);
    const served = await site(platform, 'dash', '/');
    assert.equal(served.status, 200);
    assert.match(served.body, /<h1>site dash<\/h1>/);
    await screenshots(page, 'deployment');

    // The overview: the production URL as a link, the last deployment's badge (text and
    // colour), its branch and commit.
    await page.click('header .brand');
    const dash = card(page, 'dash');
    await waitAll(page, problems, [dash.locator('.deployment-line .badge.status.ready')]);
    assert.match(await dash.locator('.url a').getAttribute('href'), /^http:\/\/dash\./);
    assert.match(await dash.locator('.branch').textContent(), /main/);
    assert.match(await dash.locator('.commit').textContent(), /^[0-9a-f]{7}$/);
    const colour =
        await dash.locator('.badge.status.ready').evaluate((e) => getComputedStyle(e).color);
    assert.notEqual(colour, await page.evaluate(() => getComputedStyle(document.body).color));
    await checkClean(page, problems);
    await page.close();
  });

  it('lists the deployments, redeploys without cache, promotes and rolls back', async () => {
    const {page, problems} = await openDashboard('#/projects/dash');
    await waitAll(page, problems, [page.locator('#deployments tr.live .badge.status.ready')]);
    const first = await page.locator('#deployments tr.live').getAttribute('data-id');
    const live = page.locator('#deployments tr.live');
    assert.equal(await live.locator('td[data-label="Trigger"]').textContent(), 'dashboard');
    assert.equal(await live.locator('td.target').textContent(), 'production');
    assert.match(
        await live.locator('td[data-label="Duration"]').textContent(), /\d+(\.\d)? (ms|s)|min/);
    assert.match(
        await live.locator('td[data-label="URL"] a').getAttribute('href'), /dash--[0-9a-z]{8}/);

    // A second version, redeployed without the build cache from the project page.
    fs.writeFileSync(`${repo}/version.txt`, 'dash-2\n');
    commitAll(repo, 'dash-2');
    await page.click('#redeploy-no-cache');
    await page.waitForURL(/#\/deployments\//);
    await waitAll(page, problems, [page.locator('#deployment .badge.status.ready')]);
    await waitFor(
        'dash-2 to be served',
        async () => (await site(platform, 'dash', '/')).body.includes('<h1>site dash-2</h1>'),
        30_000, 100);
    await page.goto(`${platform.api}/#/projects/dash`);
    await waitAll(page, problems, [page.locator('#deployments td.status', {hasText: 'cache off'})]);
    const second = await page.locator('#deployments tr.live').getAttribute('data-id');
    assert.notEqual(second, first);

    // The older production deployment offers a rollback; the newer one, once rolled back from,
    // a promote.
    await screenshots(page, 'project');
    await page.locator(`#deployments tr[data-id="${first}"] button.rollback`).click();
    await waitFor(
        'the rollback to be served',
        async () => (await site(platform, 'dash', '/')).body.includes('<h1>site dash</h1>'), 30_000,
        100);
    await waitAll(page, problems, [page.locator(`#deployments tr.live[data-id="${first}"]`)]);
    await page.locator(`#deployments tr[data-id="${second}"] button.promote`).click();
    await waitFor(
        'the promote to be served',
        async () => (await site(platform, 'dash', '/')).body.includes('<h1>site dash-2</h1>'),
        30_000, 100);
    await waitAll(page, problems, [page.locator(`#deployments tr.live[data-id="${second}"]`)]);

    // The filter asks the API for a branch, target or status and keeps it in the URL.
    const rows = page.locator('#deployments tr[data-id]');
    await page.selectOption('#filter-target', 'preview');
    await waitFor(
        'the preview filter to empty the table', async () => (await rows.count()) === 0, 10_000,
        100);
    assert.match(page.url(), /target=preview/);
    await page.selectOption('#filter-target', 'production');
    await page.selectOption('#filter-status', 'ready');
    await waitFor('only ready production deployments', async () => {
      const n = await rows.count();
      return n >= 2 && n === await readyRows(page).count();
    }, 10_000, 100);
    await page.fill('#filter-branch', 'no-such-branch');
    await page.press('#filter-branch', 'Enter');
    await waitFor(
        'an unknown branch to empty the table', async () => (await rows.count()) === 0, 10_000,
        100);
    await page.fill('#filter-branch', '');
    await page.selectOption('#filter-target', '');
    await page.selectOption('#filter-status', '');
    await page.press('#filter-branch', 'Enter');
    await waitFor('the whole list back', async () => (await rows.count()) >= 2, 10_000, 100);

    // Another branch deploys a preview: its row says so, and the branch filter finds it alone.
    const git = (...args) => execFileSync('git', args, {cwd: repo, stdio: 'pipe'});
    git('checkout', '-q', '-b', 'feature');
    fs.writeFileSync(`${repo}/version.txt`, 'dash-feature\n');
    commitAll(repo, 'a feature');
    git('checkout', '-q', 'main');
    const preview =
        await api(platform, 'POST', '/v1/projects/dash/deployments', {branch: 'feature'});
    assert.equal(preview.status, 202, JSON.stringify(preview.data));
    const previewRow = page.locator(`#deployments tr[data-id="${preview.data.id}"]`);
    await waitAll(page, problems, [previewRow.locator('.badge.status.ready')]);
    assert.equal(await previewRow.locator('td.target').textContent(), 'preview');
    assert.equal(await previewRow.locator('td[data-label="Trigger"]').textContent(), 'api');
    assert.equal(await previewRow.locator('button.promote').count(), 1);
    await page.fill('#filter-branch', 'feature');
    await page.press('#filter-branch', 'Enter');
    await waitFor('only the feature branch', async () => (await rows.count()) === 1, 10_000, 100);
    await previewRow.waitFor();
    await checkClean(page, problems);
    await page.close();
  });

  it('cancels a running build from its row', async () => {
    const slow = gitRepo({
      'package.json': JSON.stringify(
          {name: 'slow', version: '1.0.0', private: true, scripts: {build: 'node build.mjs'}}),
      'build.mjs': `console.log('waiting for cancel');\nsetTimeout(() => {}, 300000);\n`,
    });
    try {
      const created = await api(
          platform, 'POST', '/v1/deployments', {git_url: `file://${slow}`, project: 'slow'});
      assert.equal(created.status, 202, JSON.stringify(created.data));
      const {page, problems} = await openDashboard('#/projects/slow');
      const row = page.locator(`#deployments tr[data-id="${created.data.id}"]`);
      await waitAll(page, problems, [row.locator('.badge.status.building')]);
      await row.locator('button', {hasText: 'Cancel'}).click();
      await waitAll(page, problems, [row.locator('.badge.status.canceled')]);
      await checkClean(page, problems);
      await page.close();
    } finally {
      fs.rmSync(slow, {recursive: true, force: true});
    }
  });

  it('changes settings: an env var is masked once saved, a domain is listed', async () => {
    const {page, problems} = await openDashboard('#/projects/dash/settings');
    // What detection chose, from the last build's record.
    await waitAll(page, problems, [page.locator('#detected td', {hasText: 'npm run build'})]);

    const secret = 'value-that-must-not-show-' + Date.now();
    await page.fill('#env-name', 'API_KEY');
    await page.fill('#env-value', secret);
    await page.selectOption('#env-target', 'production_env');
    await page.click('#env-form button[type=submit]');
    const row = page.locator('#env-production_env tr[data-name="API_KEY"]');
    await waitAll(page, problems, [row]);
    assert.equal(await row.locator('td.masked').textContent(), '••••••••');
    assert.ok(
        !(await page.evaluate(() => document.body.innerText)).includes(secret), 'the value shows');
    assert.equal(await page.inputValue('#env-value'), '');
    const stored = await api(platform, 'GET', '/v1/projects/dash');
    assert.equal(stored.data.production_env.API_KEY, secret);

    await page.fill('#domain-name', 'www.dash.example');
    await page.click('#domain-form button[type=submit]');
    const domain = page.locator('#domains tr[data-domain="www.dash.example"]');
    await waitAll(page, problems, [domain.locator('.badge', {hasText: 'pending'})]);
    assert.match(await domain.locator('.verification').textContent(), /\.well-known\/dp-verify\//);

    // What the domain serves changes after it was added. A bad branch name shows the API's error
    // and changes nothing; then a branch, and production again.
    const domainPath = '/v1/projects/dash/domains/www.dash.example';
    await domain.locator('button', {hasText: 'Change branch'}).click();
    await page.fill('#domain-serve-branch', 'bad..name');
    await page.click('#domain-serve-form button[type=submit]');
    await waitAll(page, problems, [page.locator('#error', {hasText: 'field \'branch\''})]);
    // That 400 is the answer asked for, not a problem of the page.
    problems.splice(0, problems.length, ...problems.filter((p) => !p.startsWith('HTTP 400 ')));
    assert.equal((await api(platform, 'GET', domainPath)).data.branch, null);
    await page.fill('#domain-serve-branch', 'feature');
    await page.click('#domain-serve-form button[type=submit]');
    await waitAll(page, problems, [
      page.locator('#domain-note', {hasText: 'www.dash.example now serves branch feature'}),
      domain.locator('.serves', {hasText: 'serves branch feature'})
    ]);
    assert.equal(await page.textContent('#error'), '');
    const onBranch = (await api(platform, 'GET', domainPath)).data;
    assert.equal(onBranch.branch, 'feature');
    assert.equal(onBranch.alias, 'dash--feature');
    await domain.locator('button', {hasText: 'Change branch'}).click();
    assert.equal(await page.inputValue('#domain-serve-branch'), 'feature');
    await page.click('#domain-serve-production');
    await waitAll(page, problems, [
      page.locator('#domain-note', {hasText: 'www.dash.example now serves production'}),
      domain.locator('.serves', {hasText: 'serves production'})
    ]);
    const onProduction = (await api(platform, 'GET', domainPath)).data;
    assert.equal(onProduction.branch, null);
    assert.equal(onProduction.alias, 'dash');
    assert.equal(await page.locator('#domain-serve-form').count(), 0);

    // A deploy hook and a new webhook secret are each shown once.
    await page.fill('#hook-branch', 'main');
    await page.click('#hook-form button[type=submit]');
    await waitAll(page, problems, [
      page.locator('#hook-created code', {hasText: /\/v1\/hooks\/[0-9a-f]+/}),
      page.locator('#hooks td', {hasText: 'main'})
    ]);
    await page.click('#rotate-secret');
    await waitAll(
        page, problems, [page.locator('#webhook-secret code', {hasText: /^[0-9a-f]{64}$/})]);
    assert.match(await page.locator('#webhook-urls').textContent(), /\/v1\/webhooks\/github\/dash/);

    await page.fill('#keep-deployments', '5');
    await page.click('#retention-form button[type=submit]');
    await waitFor(
        'the retention to be stored',
        async () => (await api(platform, 'GET', '/v1/projects/dash')).data.keep_deployments === 5,
        10_000, 100);
    await page.click('#clear-cache');
    await waitAll(page, problems, [page.locator('#cache-note', {hasText: 'Cleared'})]);
    // Whether _redirects rules yield to files: saved with the build settings (after the
    // retention's save has redrawn the page, which the cache note above shows).
    await page.selectOption('#build-redirects_shadowing', 'rules');
    await page.click('#build-form button[type=submit]');
    await waitAll(page, problems, [page.locator('#build-note', {hasText: 'Saved'})]);
    assert.equal(
        (await api(platform, 'GET', '/v1/projects/dash')).data.redirects_shadowing, 'rules');

    // Protection (basic auth): the password is sent once and never shown; the API says it is set.
    await page.locator('#settings-protection').waitFor();
    await page.selectOption('#protection-scope', 'previews');
    await page.fill('#protection-username', 'team');
    await page.fill('#protection-password', 'a-password-0123');
    await page.click('#protection-form button[type=submit]');
    await waitAll(
        page, problems, [page.locator('#protection-state', {hasText: 'previews (user team)'})]);
    assert.equal(await page.inputValue('#protection-password'), '');
    assert.deepEqual(
        (await api(platform, 'GET', '/v1/projects/dash')).data.protection,
        {scope: 'previews', username: 'team', password_set: true});

    await screenshots(page, 'settings');
    // A project made without a deployment opens its settings.
    await page.goto(`${platform.api}/#/`);
    await page.fill('#git-url', `file://${repo}`);
    await page.fill('#project-name', 'dash-two');
    await page.click('#create-project');
    await page.waitForURL(/#\/projects\/dash-two\/settings$/);
    await waitAll(page, problems, [page.locator('#detected, #settings-build p.muted').first()]);
    assert.equal(await page.inputValue('#build-git_url'), `file://${repo}`);
    // The overview: the preview is the latest deployment, production is named apart, and the
    // domain is listed.
    await page.goto(`${platform.api}/#/`);
    await waitAll(
        page, problems, [card(page, 'dash').locator('.domains li', {hasText: 'www.dash.example'})]);
    assert.match(
        await card(page, 'dash').locator('.deployment-line').first().textContent(),
        /^Latest .*feature/);
    assert.match(
        await card(page, 'dash').locator('.deployment-line').nth(1).textContent(),
        /^Production .*main/);
    await screenshots(page, 'overview');
    await checkClean(page, problems);
    await page.close();
  });

  it('is usable from the keyboard', async () => {
    const {page, problems} = await openDashboard();
    await waitAll(page, problems, [card(page, 'dash').locator('h2 a')]);
    // Tab from the top of the page until the project's link has the focus; its outline shows.
    let focused = '';
    for (let i = 0; i < 20 && focused !== 'dash'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(
          () => document.activeElement.closest('h2') ? document.activeElement.textContent : '');
    }
    assert.equal(focused, 'dash', 'Tab never reached the project link');
    const outline =
        await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none');
    await page.keyboard.press('Enter');
    await page.waitForURL(/#\/projects\/dash$/);
    await waitAll(page, problems, [page.locator('#deployments tr.live')]);
    // The focus moved to the new page; Tab reaches the redeploy button, a real button.
    let tag = '';
    for (let i = 0; i < 30 && tag !== 'redeploy'; i++) {
      await page.keyboard.press('Tab');
      tag = await page.evaluate(() => document.activeElement.id);
    }
    assert.equal(tag, 'redeploy');
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'BUTTON');
    // Every form field has a label.
    for (const hash of ['#/', '#/projects/dash', '#/projects/dash/settings']) {
      await page.goto(`${platform.api}/${hash}`);
      await page.locator('main h1').waitFor();
      await page.waitForLoadState('networkidle');
      const unlabelled = await page.evaluate(
          () => [...document.querySelectorAll('main input, main select')]
                    .filter((e) => !e.labels.length)
                    .map((e) => e.id));
      assert.deepEqual(unlabelled, [], `fields without a label on ${hash}`);
    }
    await checkClean(page, problems);
    await page.close();
  });

  it('asks once for the token of an API that requires one, and keeps it in the tab', async () => {
    const token = 'dashboard-e2e-token-0123456789';
    const guarded = await startPlatform({binDir, repoRoot, env: {API_TOKENS: token}});
    try {
      const page = await browser.newPage({viewport: {width: 390, height: 844}});
      page.setDefaultTimeout(60_000);
      await page.goto(`${guarded.api}/#/`);
      const dialog = page.locator('#token-dialog[open]');
      await dialog.waitFor();
      await page.screenshot({path: path.join(screenshotDir, 'token-phone.png')});
      // Escape gives up: the page says why it shows nothing, and the next load asks again.
      await page.keyboard.press('Escape');
      await page.locator('#error', {hasText: 'token'}).waitFor();
      await page.reload();
      await dialog.waitFor();
      await page.fill('#token-input', token);
      await page.keyboard.press('Enter');
      await page.locator('#projects li', {hasText: 'No project yet'}).waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem('dp_token')), token);
      // Another page of the same tab needs no prompt.
      await page.goto(`${guarded.api}/#/projects/none`);
      await page.locator('#error', {hasText: /\w/}).waitFor();
      assert.equal(await dialog.count(), 0);
      await page.close();
    } finally {
      await guarded.stop();
      guarded.remove();
    }
  });
});
