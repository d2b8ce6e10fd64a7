// The dashboard's shell: the hash router. Each page is a module whose render(container, context)
// draws into <main> and returns a cleanup function (or a promise of one) that stops its polling
// and streams when the route changes.
//   #/                               overview.js    the projects
//   #/projects/<name>                project.js     its deployments
//   #/projects/<name>/settings       settings.js
//   #/deployments/<id>[?line=N]      deployment.js  context {id, api, params}
import * as common from './common.js';
import * as deployment from './deployment.js';
import * as overview from './overview.js';
import * as project from './project.js';
import * as settings from './settings.js';

const main = document.getElementById('main');
let cleanup = null;
let generation = 0;

// The route of a hash: its page, its context and the breadcrumb trail.
function route(hash) {
  const [path, query] = hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const home = {text: 'Projects', href: '#/'};
  if (parts[0] === 'projects' && parts.length === 2)
    return {page: project, context: {name: parts[1], params}, trail: [home, {text: parts[1]}]};
  if (parts[0] === 'projects' && parts.length === 3 && parts[2] === 'settings')
    return {page: settings, context: {name: parts[1], params},
            trail: [home, {text: parts[1], href: common.projectHref(parts[1])}, {text: 'Settings'}]};
  if (parts[0] === 'deployments' && parts.length === 2)
    return {page: deployment, context: {id: parts[1], params}, trail: [home, {text: 'Deployment ' + parts[1].slice(-8)}]};
  if (parts.length === 0) return {page: overview, context: {params}, trail: []};
  return null;
}

function breadcrumbs(trail) {
  const nav = document.getElementById('breadcrumbs');
  nav.replaceChildren(...trail.map((c, i) => common.el(
      'span', {}, i ? ' / ' : '',
      c.href ? common.el('a', {href: c.href, text: c.text})
             : common.el('span', {text: c.text, attrs: {'aria-current': 'page'}}))));
}

async function show() {
  const mine = ++generation;
  if (cleanup) cleanup();
  cleanup = null;
  common.clearError();
  const r = route(location.hash);
  if (!r) {
    breadcrumbs([{text: 'Projects', href: '#/'}]);
    main.replaceChildren(common.el('h1', {text: 'Not found'}),
                         common.el('p', {}, 'No page at ', common.el('code', {text: location.hash}), '. ',
                                   common.el('a', {href: '#/', text: 'All projects'})));
    return;
  }
  breadcrumbs(r.trail);
  document.title = r.trail.length ? r.trail[r.trail.length - 1].text + ' · Deployments' : 'Deployments';
  main.replaceChildren();
  // The deployment page is written by another hand: it gets the API client in its context.
  const stop = await Promise.resolve(r.page.render(main, {...r.context, api: common.api}));
  if (mine !== generation) {
    if (stop) stop();
    return;
  }
  cleanup = stop || null;
  // Keyboard and screen-reader users land on the new page, not on the link they left.
  if (document.activeElement === document.body || !main.contains(document.activeElement)) main.focus({preventScroll: true});
}

document.getElementById('forget-token').hidden = !common.token();
document.getElementById('forget-token').addEventListener('click', () => {
  common.forgetToken();
  show();
});
window.addEventListener('hashchange', show);
show();
