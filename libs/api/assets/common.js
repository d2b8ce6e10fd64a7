// What every page of the dashboard shares: the API client (with the token), the error line,
// element building, time and size formatting, the status badge. Pages import from here only.

const tokenKey = 'dp_token';
let pendingToken = null;  // one prompt for every request that got a 401 at the same time

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() { return sessionStorage.getItem(tokenKey) || ''; }

export function forgetToken() {
  sessionStorage.removeItem(tokenKey);
  document.getElementById('forget-token').hidden = true;
}

// Asks for the token once (a modal form), keeps it in this tab's sessionStorage.
function askToken(problem) {
  if (pendingToken) return pendingToken;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  document.getElementById('token-problem').textContent = problem;
  pendingToken = new Promise((resolve) => {
    form.onsubmit = (e) => {
      e.preventDefault();
      sessionStorage.setItem(tokenKey, input.value.trim());
      input.value = '';
      dialog.close();
      document.getElementById('forget-token').hidden = false;
      pendingToken = null;
      resolve();
    };
  });
  dialog.showModal();
  input.focus();
  return pendingToken;
}

// One API call: JSON in, JSON out (null for 204). A 401 asks for the token and tries again; any
// other error status throws an ApiError with the API's own message.
export async function api(method, path, body) {
  for (;;) {
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token()) headers.authorization = 'Bearer ' + token();
    const res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
    if (res.status === 401) {
      const data = await res.json().catch(() => null);
      await askToken(token() ? (data && data.error ? data.error.message : 'The token was refused.') : '');
      continue;
    }
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) {
      const e = data && data.error ? data.error : {code: 'http_' + res.status, message: res.statusText};
      throw new ApiError(res.status, e.code, e.message);
    }
    return data;
  }
}

// The URL of a log stream (EventSource cannot send headers: the token goes in the query).
export function streamUrl(path) {
  return token() ? path + (path.includes('?') ? '&' : '?') + 'access_token=' + encodeURIComponent(token()) : path;
}

export function showError(err) {
  document.getElementById('error').textContent = err ? (err.message || String(err)) : '';
}

export const clearError = () => showError(null);

// Runs an action from a button: the error line says what went wrong; the button is disabled
// meanwhile so that a double click does not send twice.
export async function act(button, fn) {
  clearError();
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// el('a', {href, className, text, attrs: {'aria-label': …}, on: {click: f}}, ...children)
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'attrs') for (const [a, x] of Object.entries(v)) { if (x !== undefined && x !== null) e.setAttribute(a, x); }
    else if (k === 'on') for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) e.append(c);
  }
  return e;
}

export const button = (text, onClick, props = {}) => el('button', {type: 'button', text, ...props, on: {click: onClick}});

// A link that leaves the dashboard (a site): opens in a new tab without handing it this page.
export const externalLink = (url, text = url) => el('a', {href: url, text, target: '_blank', rel: 'noopener noreferrer'});

export const projectHref = (name) => '#/projects/' + encodeURIComponent(name);
export const settingsHref = (name) => projectHref(name) + '/settings';
export const deploymentHref = (id, line) => '#/deployments/' + encodeURIComponent(id) + (line ? '?line=' + line : '');

// Replaces a container's children and gives the focus back to the element with the same
// data-key (else the one at the same place among the focusable elements): a refresh every few
// seconds must not take the keyboard focus away.
export function replaceKeepingFocus(container, ...children) {
  const focusable = 'a[href], button, input, select, textarea, [tabindex]';
  const focused = document.activeElement;
  const inside = focused && focused !== container && container.contains(focused);
  const key = inside ? focused.dataset.key : undefined;
  const index = inside ? [...container.querySelectorAll(focusable)].indexOf(focused) : -1;
  container.replaceChildren(...children.flat());
  if (!inside) return;
  const again = key ? container.querySelector(`[data-key="${CSS.escape(key)}"]`)
                    : container.querySelectorAll(focusable)[index];
  if (again) again.focus();
}

// Calls fn now and every `ms` while the page shows; returns the function that stops it. A
// failing refresh shows its error and keeps polling (the API may come back).
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    try {
      await fn();
    } catch (e) {
      showError(e);
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export const finalStatuses = ['ready', 'failed', 'canceled'];
export const statuses = ['queued', 'cloning', 'installing', 'building', 'uploading', 'ready', 'failed', 'canceled'];

// The status as colour and text (never colour alone).
export function statusBadge(status) {
  const kind = status === 'ready' ? 'ok' : status === 'failed' ? 'bad' : status === 'canceled' ? 'off' : 'busy';
  return el('span', {className: `badge status ${status} ${kind}`, text: status});
}

export const badge = (text, kind = 'off') => el('span', {className: 'badge ' + kind, text});

// 2026-12-07 04:12:09 (local time), as the element's title; the text is relative ("3 min ago").
export function formatTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function timeAgo(ms, now = Date.now()) {
  if (!ms) return '';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return s < 5 ? 'just now' : `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export const timeElement = (ms) => ms ? el('time', {dateTime: new Date(ms).toISOString(), title: formatTime(ms), text: timeAgo(ms)}) : '';

// 850 ms, 12.3 s, 4 min 05 s, 2 h 03 min
export function formatDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

// How long a deployment took (or has taken so far, while it runs).
export function deploymentDuration(d, now = Date.now()) {
  if (!d.started_at) return '';
  return formatDuration((d.finished_at || now) - d.started_at);
}

export function formatBytes(n) {
  if (n === null || n === undefined) return 'unknown';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
}

// "a1b2c3d fix the header" (the first line of the message), or '' without a commit.
export function commitLabel(d) {
  const sha = d.commit ? d.commit.slice(0, 7) : '';
  const message = d.commit_message ? d.commit_message.split('\n')[0] : '';
  return [sha, message].filter(Boolean).join(' ');
}

export function branchLabel(d) {
  return (d.pull_request ? `PR #${d.pull_request} ` : '') + (d.branch || '(default branch)');
}

// A labelled form field: <label for=…>text</label><input id=…>.
export function field(labelText, input, hint) {
  if (hint) input.setAttribute('aria-describedby', input.id + '-hint');
  return el('div', {className: 'field'}, el('label', {htmlFor: input.id, text: labelText}), input,
            hint ? el('small', {className: 'hint', id: input.id + '-hint', text: hint}) : null);
}
