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
// pages that exist (what each holds); notFound: what the 404 page says (at notFoundPath, default /no/such/page); change: a one-line edit
// of a source file, after which the site (home page or its scripts) shows the text `shows`;
// heavy: an install of over ~500 packages or a slow build, deployed by its own ctest
// (e2e_sites_heavy) so that the two tests stay within their time limits.
export const fixtures = [
  {
    name: 'docusaurus',
    kind: 'static',
    heavy: true,
    home: /<title data-rh=true>Hello from My Site \| My Site<\/title>/,
    scripts: 1,
    styles: 1,
    pages: {'/docs/intro/': /Tutorial Intro/, '/blog/': /Blog/},
    notFound: /Page Not Found/,
    change: {
      file: 'docusaurus.config.js',
      from: 'tagline: \'Dinosaurs are cool\'',
      to: 'tagline: \'Dinosaurs are very cool\'',
      shows: 'Dinosaurs are very cool',
    },
  },
  {
    name: 'gatsby',
    kind: 'static',
    heavy: true,
    home: /<title data-gatsby-head="true">Home Page<\/title>/,
    scripts: 1,
    styles: 0,  // inline
    notFound: /Page not found/,
    change: {
      file: 'src/pages/index.js',
      from: 'you just made a Gatsby site!',
      to: 'you just made a Gatsby site today!',
      shows: 'you just made a Gatsby site today!',
    },
  },
  {
    name: 'angular',
    kind: 'spa',
    heavy: true,
    home: /<app-root><\/app-root>/,
    app: /Congratulations! Your app is running/,
    scripts: 1,
    styles: 1,
    change: {
      file: 'src/app/app.html',
      from: 'Congratulations! Your app is running.',
      to: 'Congratulations! Your app is running today.',
      shows: 'Congratulations! Your app is running today.',
    },
  },
  {
    name: 'vue-cli',
    kind: 'spa',
    home: /<div id="app"><\/div>/,
    app: /Welcome to Your Vue\.js App/,
    scripts: 1,
    styles: 1,
    change: {
      file: 'src/App.vue',
      from: 'msg="Welcome to Your Vue.js App"',
      to: 'msg="Welcome to Your Vue.js App today"',
      shows: 'Welcome to Your Vue.js App today',
    },
  },
  {
    name: 'nuxt',
    kind: 'static',  // nuxt generate writes a 404.html: the app's shell, which renders the page
    home: /<title>Welcome to Nuxt/,
    scripts: 1,
    styles: 0,  // inline
    notFound: /<div id="__nuxt">/,
    change: {
      file: 'app.vue',
      from: '<NuxtWelcome />',
      to: '<NuxtWelcome title="Welcome to Nuxt today" />',
      shows: '<title>Welcome to Nuxt today</title>',
    },
  },
  {
    name: 'nextjs',
    kind: 'static',
    home: /<h1>To get started/,
    scripts: 1,
    styles: 1,
    // Written as about.html beside a folder about/ without index.
    pages: {'/about': /About this site/},
    notFound: /This page could not be found\./,
    change: {
      file: 'app/page.js',
      from: 'To get started, edit the',
      to: 'To get started today, edit the',
      shows: 'To get started today, edit the',
    },
  },
  {
    name: 'sveltekit',
    kind: 'spa',  // adapter-static without a fallback page: no 404.html
    home: /<h1>Welcome to SvelteKit/,
    scripts: 0,  // started by an inline module script
    styles: 0,
    pages: {'/about': /About this site/},  // prerendered as about.html
    change: {
      file: 'src/routes/+page.svelte',
      from: '<h1>Welcome to SvelteKit</h1>',
      to: '<h1>Welcome to SvelteKit today</h1>',
      shows: '<h1>Welcome to SvelteKit today</h1>',
    },
  },
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
    pages: {'/about/': /About/, '/blog/': /Archive/, '/blog/firstpost/': /This is my first post\./},
    notFound: /Content not found\./,
    // The starter's vercel.json has `trailingSlash: true`: a path without its slash gets 308 to
    // the path with it, as on Vercel, whether or not a page is there.
    notFoundPath: '/no/such/page/',
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
  // An attribute's value, quoted or not (minified pages, such as Docusaurus's, leave quotes out);
  // `data-src` and the like are other attributes.
  const attr = (tag, name) => {
    const m = new RegExp(`\\s${name}=(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`).exec(tag);
    return m ? (m[1] ?? m[2] ?? m[3]) : undefined;
  };
  for (const m of html.matchAll(/<script\b[^>]*>/g)) {
    const src = attr(m[0], 'src');
    if (src)
      add(src, 'script');
  }
  for (const m of html.matchAll(/<link\b[^>]*>/g)) {
    const rel = attr(m[0], 'rel') ?? '';
    const href = attr(m[0], 'href');
    if (!href)
      continue;
    if (rel === 'stylesheet')
      add(href, 'style');
    else if (/\bicon\b/.test(rel))
      add(href, 'icon');
  }
  for (const m of html.matchAll(/<img\b[^>]*>/g)) {
    const src = attr(m[0], 'src');
    if (src)
      add(src, 'image');
  }
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
