// The project page (#/projects/<name>): its production URL, a deploy bar (redeploy, with or
// without the build cache), and its deployments with a filter by branch, target and status;
// each row promotes, rolls back (promotes an older production deployment) or cancels.
import {act, branchLabel, button, commitLabel, deploymentDuration, deploymentHref, el, externalLink, field,
        finalStatuses, poll, replaceKeepingFocus, settingsHref, showError, statusBadge, statuses, timeElement} from './common.js';

const pageSize = 30;

export function render(container, {name, params, api}) {
  const base = '/v1/projects/' + encodeURIComponent(name);
  const header = el('div', {className: 'project-head'});
  const branch = el('input', {id: 'filter-branch', autocomplete: 'off', value: params.get('branch') || ''});
  const select = (id, options, value) => el('select', {id}, el('option', {value: '', text: 'any'}),
                                            options.map((o) => el('option', {value: o, text: o, selected: o === value})));
  const target = select('filter-target', ['production', 'preview'], params.get('target'));
  const status = select('filter-status', statuses, params.get('status'));
  const filter = el('form', {id: 'filter', className: 'filter', attrs: {'aria-label': 'Filter deployments'}},
                    field('Branch', branch), field('Target', target), field('Status', status),
                    el('button', {type: 'submit', text: 'Filter', className: 'quiet'}));
  const rows = el('tbody', {id: 'deployments'});
  const more = el('p', {className: 'more'});
  const table = el('table', {className: 'deployments'},
                   el('caption', {className: 'visually-hidden', text: 'Deployments of ' + name}),
                   el('thead', {}, el('tr', {}, ['Deployment', 'Status', 'Target', 'Branch', 'Commit', 'Created', 'Duration',
                                                 'Trigger', 'URL', 'Actions'].map((h) => el('th', {scope: 'col', text: h})))),
                   rows);
  container.append(header, el('h2', {text: 'Deployments'}), filter, el('div', {className: 'table-wrap'}, table), more);

  let project = null;
  let limit = pageSize;
  const refresh = async () => {
    project = await api('GET', base);
    drawHeader();
    const query = new URLSearchParams({limit: String(limit)});
    if (branch.value.trim()) query.set('branch', branch.value.trim());
    if (target.value) query.set('target', target.value);
    if (status.value) query.set('status', status.value);
    const page = await api('GET', `${base}/deployments?${query}`);
    replaceKeepingFocus(rows, page.deployments.map(row));
    if (!page.deployments.length)
      rows.append(el('tr', {}, el('td', {colSpan: 10, className: 'muted', text: 'No deployment matches.'})));
    replaceKeepingFocus(more, page.next_cursor
        ? button('Show more', () => { limit += pageSize; refresh(); }, {dataset: {key: 'more'}}) : '');
  };

  function drawHeader() {
    const p = project;
    const deploy = (noCache) => (e) => act(e.target, async () => {
      const body = {project: name, trigger: 'dashboard'};
      if (noCache) body.no_cache = true;
      const d = await api('POST', '/v1/deployments', body);
      location.hash = deploymentHref(d.id);
    });
    replaceKeepingFocus(header,
        el('h1', {text: p.name}),
        el('p', {className: 'url'}, 'Production: ', p.production_deployment_id ? externalLink(p.url) : el('span', {className: 'muted', text: 'nothing live yet'})),
        el('p', {className: 'muted'}, p.git_url ? ['From ', el('code', {text: p.git_url}), ', production branch ',
                                                   el('code', {text: p.production_branch || 'the default branch'})]
                                                : 'Deployed from uploaded directories (deployctl deploy <dir>).'),
        el('div', {className: 'actions'},
           // A project made by an upload has no source the server could build again.
           p.git_url ? [button('Redeploy', deploy(false), {id: 'redeploy', dataset: {key: 'redeploy'}}),
                        button('Redeploy without cache', deploy(true), {id: 'redeploy-no-cache', className: 'quiet', dataset: {key: 'redeploy-no-cache'}})]
                     : null,
           el('a', {href: settingsHref(name), className: 'button-like quiet', text: 'Settings', dataset: {key: 'settings'}})));
  }

  function row(d) {
    const live = d.id === project.production_deployment_id;
    const actions = el('td', {className: 'actions', dataset: {label: 'Actions'}});
    const run = (label, method, path, body, props = {}) =>
        button(label, (e) => act(e.target, async () => { await api(method, path, body); await refresh(); }),
               {dataset: {key: label + ':' + d.id}, attrs: {'aria-label': `${label} ${d.id.slice(-8)}`}, ...props});
    if (!finalStatuses.includes(d.status))
      actions.append(run('Cancel', 'POST', `/v1/deployments/${d.id}/cancel`, undefined, {className: 'danger'}));
    if (d.status === 'ready' && !live && !d.pruned_at) {
      // An older production build taking production back is a rollback; anything else is a promote.
      const older = (d.target || 'production') === 'production' && project.production_deployment_id &&
                    d.id < project.production_deployment_id;
      actions.append(run(older ? 'Rollback' : 'Promote', 'POST', `${base}/promote`, {deployment_id: d.id},
                         {className: older ? 'rollback' : 'promote'}));
    }
    const cell = (label, ...content) => el('td', {dataset: {label}}, ...content);
    return el('tr', {className: live ? 'live' : '', dataset: {id: d.id}},
        cell('Deployment', el('a', {href: deploymentHref(d.id), text: d.id.slice(-8), dataset: {key: 'open:' + d.id}}),
             live ? [' ', el('span', {className: 'badge ok', text: 'production'})] : ''),
        el('td', {className: 'status ' + d.status, dataset: {label: 'Status'}}, statusBadge(d.status),
           d.cache ? el('small', {text: ` cache ${d.cache}`}) : '', d.pruned_at ? el('small', {text: ' pruned'}) : ''),
        el('td', {className: 'target', dataset: {label: 'Target'}, text: d.target || 'production'}),
        el('td', {className: 'branch', dataset: {label: 'Branch'}, text: branchLabel(d)}),
        cell('Commit', commitLabel(d) ? el('code', {className: 'commit', text: commitLabel(d), title: d.commit || ''}) : '—'),
        cell('Created', timeElement(d.created_at)),
        cell('Duration', deploymentDuration(d) || '—'),
        cell('Trigger', d.trigger || '—'),
        cell('URL', d.url && !d.pruned_at ? externalLink(d.url) : '—'),
        actions);
  }

  // Each change of the filter asks the API again and keeps the filter in the URL (a link to it
  // opens the same list).
  const apply = () => {
    const q = new URLSearchParams();
    if (branch.value.trim()) q.set('branch', branch.value.trim());
    if (target.value) q.set('target', target.value);
    if (status.value) q.set('status', status.value);
    history.replaceState(null, '', '#/projects/' + encodeURIComponent(name) + (String(q) ? '?' + q : ''));
    limit = pageSize;
    refresh().catch(showError);
  };
  filter.addEventListener('change', apply);
  filter.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  return poll(refresh, 3000);
}
