// The overview (#/): every project with its production URL, its last deployment (status, when,
// commit, branch), what is in production, and its custom domains; a form that deploys a git URL
// (making the project when it is new) or only creates the project.
import {act, branchLabel, button, clearError, commitLabel, deploymentHref, el, externalLink, field, poll,
        projectHref, replaceKeepingFocus, settingsHref, showError, statusBadge, timeElement} from './common.js';

export function render(container, {api}) {
  const gitUrl = el('input', {id: 'git-url', type: 'url', required: true, placeholder: 'https://…', autocomplete: 'off'});
  const name = el('input', {id: 'project-name', autocomplete: 'off', placeholder: 'from the repository'});
  const branch = el('input', {id: 'deploy-branch', autocomplete: 'off', placeholder: 'production branch'});
  const form = el('form', {id: 'deploy', className: 'card new'},
                  el('h2', {text: 'Deploy a git repository'}),
                  el('div', {className: 'row'}, field('Git URL', gitUrl), field('Project name (optional)', name),
                     field('Branch (optional)', branch)),
                  el('div', {className: 'actions'},
                     el('button', {type: 'submit', text: 'Deploy'}),
                     button('Create project only', (e) => createOnly(e.target), {id: 'create-project', className: 'quiet'})));
  const list = el('ul', {id: 'projects', className: 'projects'});
  container.append(el('h1', {text: 'Projects'}), list, form);

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = {git_url: gitUrl.value.trim(), trigger: 'dashboard'};
    if (name.value.trim()) body.project = name.value.trim();
    if (branch.value.trim()) body.branch = branch.value.trim();
    act(form.querySelector('button[type=submit]'), async () => {
      const d = await api('POST', '/v1/deployments', body);
      location.hash = deploymentHref(d.id);
    });
  });

  // A project without a first deployment (its settings set before it builds).
  async function createOnly(b) {
    if (!form.reportValidity()) return;
    const projectName = name.value.trim() || gitUrl.value.trim().replace(/\/+$/, '').replace(/\.git$/, '').split(/[/:]/).pop();
    const body = {name: projectName, git_url: gitUrl.value.trim()};
    if (branch.value.trim()) body.production_branch = branch.value.trim();
    await act(b, async () => {
      await api('POST', '/v1/projects', body);
      location.hash = settingsHref(projectName);
    });
  }

  async function card(p) {
    const base = '/v1/projects/' + encodeURIComponent(p.name);
    const [view, latest, domains] = await Promise.all([
      api('GET', base), api('GET', base + '/deployments?limit=1'), api('GET', base + '/domains')]);
    const last = latest.deployments[0];
    let live = null;
    if (view.production_deployment_id)
      live = last && last.id === view.production_deployment_id
                 ? last
                 : await api('GET', '/v1/deployments/' + encodeURIComponent(view.production_deployment_id)).catch(() => null);
    const deploymentLine = (label, d) => el('p', {className: 'deployment-line'},
        el('span', {className: 'label', text: label}), ' ',
        el('a', {href: deploymentHref(d.id), dataset: {key: label + d.id}}, statusBadge(d.status)), ' ',
        timeElement(d.created_at), ' · ', el('span', {className: 'branch', text: branchLabel(d)}),
        commitLabel(d) ? [' · ', el('code', {className: 'commit', text: commitLabel(d)})] : '');
    return el('li', {className: 'project card', dataset: {project: p.name}},
        el('h2', {}, el('a', {href: projectHref(p.name), text: p.name, dataset: {key: 'project:' + p.name}})),
        el('p', {className: 'url'}, live ? externalLink(view.url) : el('span', {className: 'muted', text: view.url + ' (nothing live yet)'})),
        last ? deploymentLine('Latest', last) : el('p', {className: 'muted', text: 'No deployment yet.'}),
        live && live.id !== last.id ? deploymentLine('Production', live) : null,
        domains.domains.length
            ? el('ul', {className: 'domains', attrs: {'aria-label': 'Custom domains'}},
                 domains.domains.map((d) => el('li', {}, d.state === 'verified' ? externalLink((d.certificate && d.certificate.status === 'issued' ? 'https://' : 'http://') + d.domain, d.domain) : d.domain, ' ',
                                              d.state === 'verified' ? '' : el('span', {className: 'badge busy', text: d.state}))))
            : null,
        el('p', {className: 'links'}, el('a', {href: settingsHref(p.name), text: 'Settings', dataset: {key: 'settings:' + p.name},
                                                attrs: {'aria-label': p.name + ' settings'}})));
  }

  const stop = poll(async () => {
    const {projects} = await api('GET', '/v1/projects');
    const cards = await Promise.all(projects.map((p) => card(p).catch((e) => {
      showError(e);
      return el('li', {className: 'project card'}, el('h2', {}, el('a', {href: projectHref(p.name), text: p.name})));
    })));
    if (!projects.length) cards.push(el('li', {className: 'muted', text: 'No project yet: deploy a git repository below.'}));
    replaceKeepingFocus(list, cards);
  }, 5000);
  clearError();
  return stop;
}
