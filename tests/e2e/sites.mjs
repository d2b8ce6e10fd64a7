// The real sites of tests/fixtures/sites/, as the e2e test (sites.e2e.mjs) and the benchmark
// (bench/sites_bench.sh) deploy them: copied to a directory named after the fixture and uploaded
// by deployctl with no settings at all (the project name comes from the directory), what their
// home page must show, how they answer an unknown path, and the one-line change both redeploy.
// Node 20 built-ins only.
import {execFile} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import {site, tempDir} from './platform.mjs';

// kind: 'spa' answers any path that is not a file with index.html (200); 'static' with its
// 404.html (404). home: what the home page holds; app: what its scripts hold (SPAs render the
// page from them); scripts, styles: how many of each the home page names at least; pages: other
// pages that exist; notFound: what the 404 page says; change: a one-line edit of a source file,
// after which the site (home page or its scripts) shows the text `shows`.
export const fixtures = [
  {
    name: 'cra',
    kind: 'spa',
    home: /<div id="root"><\/div>/,
    app: /Learn React/,
    scripts: 1,
    styles: 1,
    change: {
      file: 'src/App.js',
      from: 'Learn React',
      to: 'Learn React today',
      shows: 'Learn React today',
    },
  },
  {
    name: 'vite-react',
    kind: 'spa',
    home: /<div id="root"><\/div>/,
    app: /Get started/,
    scripts: 1,
    styles: 1,
    change: {
      file: 'src/App.jsx',
      from: '<h1>Get started</h1>',
      to: '<h1>Get started today</h1>',
      shows: 'Get started today',
    },
  },
  {
    name: 'astro',
    kind: null,  // no 404 page: the platform's choice (SPA by default) is not what is tested here
    home: /<title>Astro Basics/,
    scripts: 0,  // its styles are inline
    styles: 0,
    change: {
      file: 'src/layouts/Layout.astro',
      from: '<title>Astro Basics</title>',
      to: '<title>Astro Basics today</title>',
      shows: '<title>Astro Basics today</title>',
    },
  },
  {
    name: 'eleventy',
    kind: 'static',
    home: /<title>Eleventy Base Blog v9/,
    scripts: 1,
    styles: 0,  // inline
    pages: ['/about/', '/blog/', '/blog/firstpost/'],
    notFound: /Content not found\./,
    change: {
      file: '_data/metadata.js',
      from: 'title: "Eleventy Base Blog v9"',
      to: 'title: "Eleventy Base Blog v9 today"',
      shows: '<title>Eleventy Base Blog v9 today</title>',
    },
  },
  {
    name: 'plain-html',
    kind: 'static',
    home: /Hello world! This is HTML5 Boilerplate/,
    scripts: 1,
    styles: 1,
    notFound: /<title>Page Not Found<\/title>/,
    change: {
      file: 'index.html',
      from: 'This is HTML5 Boilerplate.',
      to: 'This is HTML5 Boilerplate today.',
      shows: 'This is HTML5 Boilerplate today.',
    },
  },
];

// A copy of the fixture in a fresh directory named after it (the project name deployctl derives).
// Returns {dir, parent}: remove `parent` afterwards.
export function copyFixture(repoRoot, name) {
  const parent = tempDir('dp-sites-');
  const dir = path.join(parent, name);
  fs.cpSync(path.join(repoRoot, 'tests/fixtures/sites', name), dir, {recursive: true});
  return {dir, parent};
}

// Applies the fixture's one-line change to its copy in `dir`.
export function applyChange(fixture, dir) {
  const file = path.join(dir, fixture.change.file);
  const text = fs.readFileSync(file, 'utf8');
  if (!text.includes(fixture.change.from))
    throw new Error(
        `${fixture.name}: ${fixture.change.file} does not hold "${fixture.change.from}"`);
  fs.writeFileSync(file, text.replace(fixture.change.from, fixture.change.to));
}

// `deployctl deploy <dir> --follow=false` as a user runs it: packs the directory, uploads it and
// prints the queued deployment. Resolves to {id, project, output}.
export function deployDirectory(p, binDir, dir) {
  const deployctl = path.join(binDir, 'services/deployctl/deployctl');
  return new Promise((resolve, reject) => {
    execFile(
        deployctl, ['deploy', dir, '--follow=false'],
        {env: {...process.env, DEPLOYCTL_API_URL: p.api}}, (err, stdout, stderr) => {
          const output = `${stdout}${stderr}`;
          if (err)
            return reject(new Error(`deployctl deploy ${dir}: ${err.message}\n${output}`));
          const m = /^deployment (\S+) of (\S+) is /m.exec(stdout);
          if (!m)
            return reject(
                new Error(`deployctl deploy ${dir}: no deployment in its output:\n${output}`));
          resolve({id: m[1], project: m[2], output});
        });
  });
}

// The same-site files the page names: [{path, as}] with `as` one of script, style, icon, image
// (absolute paths, resolved against `base`).
export function pageAssets(html, base = '/') {
  const found = [];
  const add = (ref, as) => {
    const url = new URL(ref, `http://site${base}`);
    if (url.host === 'site')
      found.push({path: url.pathname, as});
  };
  for (const m of html.matchAll(/<script\b[^>]*\bsrc="([^"]+)"/g))
    add(m[1], 'script');
  for (const m of html.matchAll(/<link\b[^>]*>/g)) {
    const rel = /\brel="([^"]+)"/.exec(m[0])?.[1] ?? '';
    const href = /\bhref="([^"]+)"/.exec(m[0])?.[1];
    if (!href)
      continue;
    if (rel === 'stylesheet')
      add(href, 'style');
    else if (/\bicon\b/.test(rel))
      add(href, 'icon');
  }
  for (const m of html.matchAll(/<img\b[^>]*\bsrc="([^"]+)"/g))
    add(m[1], 'image');
  return found;
}

// The content type a file must be served with, by its extension.
export function expectedType(file) {
  const ext = path.extname(file).slice(1).toLowerCase();
  const types = {
    js: /^text\/javascript\b/,
    mjs: /^text\/javascript\b/,
    css: /^text\/css\b/,
    svg: /^image\/svg\+xml\b/,
    png: /^image\/png$/,
    ico: /^image\/(x-icon|vnd\.microsoft\.icon)$/,
    webp: /^image\/webp$/,
    avif: /^image\/avif$/,
  };
  return types[ext] ?? null;
}

// What the deployed site shows: its home page and the scripts it names (an SPA's text is in them).
export async function siteText(p, label) {
  const home = await site(p, label, '/');
  let text = home.body;
  for (const a of pageAssets(home.body).filter((a) => a.as === 'script'))
    text += (await site(p, label, a.path)).body;
  return text;
}
