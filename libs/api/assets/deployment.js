// The deployment page: #/deployments/<id>[?line=N].
// Contract with the shell (app.js): render(container, {id, api, params}) draws into container
// and returns a cleanup function (or a promise of one) that stops what it started. `api` is
// common.js's api(method, path, body); params holds the hash's query (line=N).
// For now it shows the deployment's record, refreshed until it is final.
import {act, branchLabel, button, commitLabel, deploymentDuration, el, externalLink, finalStatuses, formatBytes,
        poll, projectHref, replaceKeepingFocus, statusBadge, timeElement} from './common.js';

export function render(container, {id, api}) {
  const heading = el('h1', {text: 'Deployment ' + id});
  const details = el('div', {id: 'deployment'});
  container.append(heading, details);
  let stop = null;
  stop = poll(async () => {
    const d = await api('GET', '/v1/deployments/' + encodeURIComponent(id));
    const row = (name, ...value) => [el('dt', {text: name}), el('dd', {}, ...value)];
    const actions = el('div', {className: 'actions'});
    if (!finalStatuses.includes(d.status))
      actions.append(button('Cancel', (e) => act(e.target, () => api('POST', `/v1/deployments/${d.id}/cancel`)),
                            {dataset: {key: 'cancel'}}));
    replaceKeepingFocus(details,
        el('dl', {className: 'record'},
           row('Status', statusBadge(d.status), d.error ? ' ' + d.error : ''),
           row('Project', el('a', {href: projectHref(d.project), text: d.project})),
           row('Target', d.target || 'production'),
           row('Branch', branchLabel(d)),
           row('Commit', commitLabel(d) || '—'),
           row('Trigger', d.trigger || '—'),
           row('Created', timeElement(d.created_at)),
           row('Duration', deploymentDuration(d) || '—'),
           row('Cache', d.cache || '—'),
           row('Files', d.files === null || d.files === undefined ? '—' : `${d.files} (${formatBytes(d.bytes)})`),
           row('URL', d.url ? externalLink(d.url) : '—')),
        actions);
    if (finalStatuses.includes(d.status) && stop) stop();
  }, 2000);
  return () => stop();
}
