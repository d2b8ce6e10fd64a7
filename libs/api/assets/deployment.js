// The deployment page (#/deployments/<id>[?line=N]): the record, and its build log in phases,
// replayed from the start and then followed live. The log is the build's own output, so its text
// only ever reaches the page through textContent and Text nodes; ANSI colours become classes.
// Contract with the shell (app.js): render(container, {id, api, params}) returns its cleanup.
import {act, branchLabel, button, commitLabel, deploymentDuration, deploymentHref, el, externalLink,
        finalStatuses, formatDuration, poll, projectHref, replaceKeepingFocus, statusBadge, streamUrl,
        timeElement} from './common.js';

const phaseNames = {
  clone: 'Clone', restore_cache: 'Restore cache', install: 'Install', build: 'Build',
  upload: 'Upload', save_cache: 'Save cache', go_live: 'Go live', log: 'Log',
};
// Lines rendered per animation frame: a replay of 20k lines lands in a few frames, not 20k
// layouts.
const batchLines = 5000;

// One line's text as [{text, classes}]: SGR colours (30-37, 90-97, 40-47, 100-107), bold, dim,
// italic, underline and their resets become classes; every other escape sequence is dropped. A
// carriage return (a progress bar redrawn in place) keeps what was drawn last.
export function parseAnsi(line) {
  const cr = line.lastIndexOf('\r', line.length - 2);
  if (cr >= 0) line = line.slice(cr + 1);
  const out = [];
  let fg = null, bg = null, bold = false, dim = false, italic = false, underline = false;
  const push = (text) => {
    text = text.replace(/\x1b[^a-zA-Z]*[a-zA-Z]?|[\x00-\x08\x0b-\x1f\x7f]/g, '');
    if (!text) return;
    const c = [];
    if (fg !== null) c.push('ansi-fg-' + fg);
    if (bg !== null) c.push('ansi-bg-' + bg);
    if (bold) c.push('ansi-bold');
    if (dim) c.push('ansi-dim');
    if (italic) c.push('ansi-italic');
    if (underline) c.push('ansi-underline');
    out.push({ text, classes: c.join(' ') });
  };
  const re = /\x1b\[([0-9;]*)([A-Za-z])/g;
  let last = 0;
  for (let m; (m = re.exec(line)); ) {
    push(line.slice(last, m.index));
    last = re.lastIndex;
    if (m[2] !== 'm') continue;
    const codes = (m[1] || '0').split(';').map((x) => Number(x || 0));
    for (let i = 0; i < codes.length; ++i) {
      const c = codes[i];
      if (c === 0) { fg = bg = null; bold = dim = italic = underline = false; }
      else if (c === 1) bold = true;
      else if (c === 2) dim = true;
      else if (c === 3) italic = true;
      else if (c === 4) underline = true;
      else if (c === 22) bold = dim = false;
      else if (c === 23) italic = false;
      else if (c === 24) underline = false;
      else if (c >= 30 && c <= 37) fg = c - 30;
      else if (c >= 90 && c <= 97) fg = c - 90 + 8;
      else if (c === 39) fg = null;
      else if (c >= 40 && c <= 47) bg = c - 40;
      else if (c >= 100 && c <= 107) bg = c - 100 + 8;
      else if (c === 49) bg = null;
      // 256-colour and true-colour forms: their arguments are skipped, the colour is not kept.
      else if (c === 38 || c === 48) i += codes[i + 1] === 5 ? 2 : codes[i + 1] === 2 ? 4 : 0;
    }
  }
  push(line.slice(last));
  return out;
}

// The line a failed build is best read from: in the phase that failed (the last one), its first
// stderr line that says error, else any line that does, else its first stderr line; in a log
// without a failure, the first such line anywhere. null when nothing looks like an error.
const saysError = (l) => /\berror\b|ERR!|\bfailed\b/i.test(l.plain);

export function firstError(lines, failed) {
  let scope = lines;
  if (failed && lines.length > 0) {
    const phase = lines[lines.length - 1].phase;
    let i = lines.length;
    while (i > 0 && lines[i - 1].phase === phase) --i;
    scope = lines.slice(i);
  }
  return scope.find((l) => l.stream === 'stderr' && saysError(l)) ||
         scope.find((l) => l.stream !== 'system' && saysError(l)) ||
         scope.find((l) => l.stream === 'stderr') ||
         (failed ? scope.find(saysError) || null : null);
}

export function render(container, {id, api, params}) {
  const base = '/v1/deployments/' + encodeURIComponent(id);
  const lines = [];         // the model: {seq, ts, stream, phase, segments, plain, lower}, in seq order
  const rows = new Map();   // seq -> the line's element, once rendered
  const sections = [];      // {phase, details, duration, body, start}: one per phase, in order
  let pending = [];         // lines received, not rendered yet
  let frame = 0;
  let lastSeq = 0;          // the highest seq received: a reconnect resumes after it
  let record = null;
  let stream = null, retries = 0, closed = false, retryTimer = 0;
  let targetLine = params && params.get('line') ? Number(params.get('line')) : null;
  let matches = [], matchAt = -1;
  let errorSeen = false;    // a stderr line or one that says error: something to jump to
  // Following a running build: from a first record that is not final to the stream's final
  // status, which comes after the last line (a poll may see the status change earlier).
  let live = false;

  const running = () => record !== null && !finalStatuses.includes(record.status);
  const failed = () => record !== null && record.status === 'failed';

  const head = el('div', {className: 'deployment-head'});
  const facts = el('dl', {className: 'facts'});
  const search = el('input', {type: 'search', id: 'log-search', placeholder: 'Search the log',
                              attrs: {'aria-label': 'Search the log', 'aria-keyshortcuts': '/'}});
  const count = el('span', {className: 'log-count', attrs: {'aria-live': 'polite'}});
  const prev = button('↑', () => go(-1), {className: 'quiet log-prev', title: 'Previous match (Shift+Enter)',
                                           attrs: {'aria-label': 'Previous match'}});
  const next = button('↓', () => go(1), {className: 'quiet log-next', title: 'Next match (Enter)',
                                          attrs: {'aria-label': 'Next match'}});
  const jump = button('Jump to first error', () => jumpToError(), {className: 'quiet jump-error', disabled: true});
  const following = el('span', {className: 'log-follow muted', attrs: {'aria-live': 'polite'}});
  const log = el('div', {className: 'log', tabIndex: 0, attrs: {role: 'log', 'aria-label': 'Build log'}});
  container.append(el('div', {id: 'deployment'},
                      el('h1', {}, 'Deployment ', el('code', {text: id.slice(-8), title: id})), head, facts,
                      el('h2', {text: 'Build log'}),
                      el('div', {className: 'log-tools'}, search, prev, next, count, jump, following), log));

  // ---- the record ----

  function showRecord() {
    const d = record;
    const row = (name, ...value) => el('div', {}, el('dt', {text: name}), el('dd', {}, ...value));
    // Redrawn by every poll: a focused Cancel button keeps the focus.
    replaceKeepingFocus(head, statusBadge(d.status),
                        d.error ? el('span', {className: 'problem', text: ' ' + d.error}) : '',
                        running() ? button('Cancel build', (e) => act(e.target, () => api('POST', base + '/cancel')),
                                           {className: 'danger cancel-build', dataset: {key: 'cancel'}}) : '');
    facts.replaceChildren(...[
      row('Project', el('a', {href: projectHref(d.project), text: d.project})),
      row('Target', d.target || 'production'),
      row('Branch', branchLabel(d)),
      row('Commit', commitLabel(d) || '—'),
      row('Trigger', d.trigger || '—'),
      row('URL', d.url ? externalLink(d.url) : '—'),
      row('Created', timeElement(d.created_at)),
      row('Duration', el('span', {className: 'deployment-duration'})),
      row('Cache', d.cache || '—'),
    ]);
    tick();
  }
  // Durations of what still runs (the deployment, its current phase) move on by themselves.
  function tick() {
    const now = Date.now();
    const shown = facts.querySelector('.deployment-duration');
    if (record && shown) shown.textContent = (deploymentDuration(record, now) || '—') + (running() ? ' (running)' : '');
    for (let i = 0; i < sections.length; ++i) {
      const s = sections[i];
      const end = i + 1 < sections.length ? sections[i + 1].start
                : running() ? now : (record && record.finished_at) || lines[lines.length - 1].ts;
      s.duration.textContent = formatDuration(Math.max(0, end - s.start));
    }
  }
  const ticker = setInterval(() => { if (running()) tick(); }, 1000);

  // ---- the log ----

  // The phase's section: a new phase closes the one before while the build runs (a failed or
  // running phase is the one open).
  function sectionFor(phase, ts) {
    const cur = sections[sections.length - 1];
    if (cur && cur.phase === phase) return cur;
    if (cur && live) cur.details.open = false;
    const duration = el('span', {className: 'phase-duration'});
    const body = el('div', {className: 'phase-lines'});
    const details = el('details', {className: 'phase', open: live || phase === 'log', dataset: {phase}},
                       el('summary', {}, el('span', {className: 'phase-name', text: phaseNames[phase] || phase}), duration),
                       body);
    const s = {phase, details, duration, body, start: ts};
    sections.push(s);
    log.append(details);
    return s;
  }

  function lineElement(l) {
    const text = el('span', {className: 'text'});
    for (const seg of l.segments)
      text.append(seg.classes ? el('span', {className: seg.classes, text: seg.text}) : document.createTextNode(seg.text));
    return el('div', {className: 'line ' + l.stream, dataset: {seq: l.seq}},
              // Out of the tab order (20,000 stops otherwise): the log itself takes the focus.
              el('a', {className: 'ln', href: deploymentHref(id, l.seq), text: String(l.seq), tabIndex: -1,
                       attrs: {'aria-label': 'link to line ' + l.seq}}),
              text);
  }

  // Renders what arrived since the last frame, one fragment per phase, then follows the end only
  // when the reader was there already.
  function flush() {
    frame = 0;
    const batch = pending.splice(0, batchLines);
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    let section = null, fragment = null;
    for (const l of batch) {
      const s = sectionFor(l.phase, l.ts);
      if (s !== section) {
        if (section) section.body.append(fragment);
        section = s;
        fragment = document.createDocumentFragment();
      }
      const row = lineElement(l);
      rows.set(l.seq, row);
      fragment.append(row);
    }
    if (section) section.body.append(fragment);
    if (atEnd && live) log.scrollTop = log.scrollHeight;
    if (batch.length) tick();
    jump.disabled = !errorSeen && !failed();
    if (search.value && batch.length) findMatches(false);
    if (targetLine !== null && rows.has(targetLine)) {
      reveal(targetLine, 'target');
      targetLine = null;
    }
    if (pending.length) schedule();
  }
  const schedule = () => { if (!frame) frame = requestAnimationFrame(flush); };
  function flushNow() {
    if (frame) cancelAnimationFrame(frame);
    frame = 0;
    while (pending.length) flush();
  }

  // Replay, then follow: a seq already received (the overlap of a reconnect) is dropped.
  function receive(ev) {
    if (ev.seq <= lastSeq) return;
    lastSeq = ev.seq;
    // A line without a phase (the worker's, or a log from before phases) stays in the one before.
    const phase = ev.phase || (lines.length ? lines[lines.length - 1].phase : 'log');
    const segments = parseAnsi(ev.line);
    const plain = segments.map((s) => s.text).join('');
    const l = {seq: ev.seq, ts: ev.ts_ms, stream: ev.stream, phase, segments, plain, lower: plain.toLowerCase()};
    errorSeen = errorSeen || l.stream === 'stderr' || saysError(l);
    lines.push(l);
    pending.push(l);
    schedule();
  }

  // Opens the line's phase, scrolls the line to the middle of the log (and the screen) and marks
  // it.
  function reveal(seq, mark) {
    flushNow();
    const row = rows.get(seq);
    if (!row) return;
    for (const old of log.querySelectorAll('.line.' + mark)) old.classList.remove(mark);
    row.classList.add(mark);
    row.closest('details').open = true;
    // The log and the page both: on a phone the log starts below the record.
    row.scrollIntoView({block: 'center'});
  }

  function jumpToError() {
    flushNow();
    const l = firstError(lines, failed());
    if (l) reveal(l.seq, 'target');
  }

  // A line's number is its link: the address changes (to share it), the log stays.
  log.addEventListener('click', (e) => {
    const a = e.target.closest('a.ln');
    if (!a) return;
    e.preventDefault();
    history.replaceState(null, '', a.getAttribute('href'));
    reveal(Number(a.textContent), 'target');
  });

  // ---- search ----

  function findMatches(moveToFirst) {
    const q = search.value.toLowerCase();
    for (const seq of matches) rows.get(seq)?.classList.remove('match', 'current');
    matches = q ? lines.filter((l) => l.lower.includes(q)).map((l) => l.seq) : [];
    for (const seq of matches) rows.get(seq)?.classList.add('match');
    if (matchAt >= matches.length) matchAt = matches.length - 1;
    highlightText(q);
    if (moveToFirst && matches.length) {
      matchAt = -1;
      go(1);
    } else {
      if (matchAt >= 0) rows.get(matches[matchAt])?.classList.add('current');
      showCount();
    }
  }
  function showCount() {
    count.textContent = !search.value ? '' : matches.length ? `${matchAt + 1}/${matches.length}` : 'no match';
  }
  function go(step) {
    if (search.value && !matches.length) findMatches(false);
    if (matches.length) {
      if (matchAt >= 0) rows.get(matches[matchAt])?.classList.remove('current');
      matchAt = (matchAt + step + matches.length) % matches.length;
      reveal(matches[matchAt], 'current');
    }
    showCount();
  }
  // The matched text itself through the CSS Custom Highlight API, where there is one: the lines'
  // DOM stays as it is. The matching lines are marked either way.
  function highlightText(q) {
    if (!globalThis.CSS || !CSS.highlights || typeof Highlight !== 'function') return;
    if (!q) {
      CSS.highlights.delete('log-search');
      return;
    }
    const ranges = [];
    for (const seq of matches.slice(0, 2000)) {
      const text = rows.get(seq)?.querySelector('.text');
      if (!text) continue;
      const walker = document.createTreeWalker(text, NodeFilter.SHOW_TEXT);
      for (let node; (node = walker.nextNode());) {
        const lower = node.data.toLowerCase();
        for (let i = lower.indexOf(q); i >= 0; i = lower.indexOf(q, i + q.length)) {
          const r = new Range();
          r.setStart(node, i);
          r.setEnd(node, i + q.length);
          ranges.push(r);
        }
      }
    }
    CSS.highlights.set('log-search', new Highlight(...ranges));
  }

  let searchTimer = 0;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => findMatches(true), 150);
  });
  // Enter: the next match, Shift+Enter: the one before, Escape: no search.
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      clearTimeout(searchTimer);
      go(e.shiftKey ? -1 : 1);
    } else if (e.key === 'Escape') {
      search.value = '';
      findMatches(false);
    }
  });
  // '/' searches from anywhere on the page but a field.
  const onKey = (e) => {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName)) return;
    e.preventDefault();
    search.focus();
  };
  document.addEventListener('keydown', onKey);

  // ---- the stream ----

  // EventSource resumes by itself (Last-Event-ID) after a network error; when it gives up (an
  // HTTP error, or the server dropped a slow reader) a new one starts after the last seq
  // received.
  function connect() {
    if (closed) return;
    stream = new EventSource(streamUrl(base + '/logs/stream?since=' + lastSeq));
    following.textContent = 'following';
    stream.addEventListener('log', (e) => {
      retries = 0;
      receive(JSON.parse(e.data));
    });
    stream.addEventListener('status', (e) => {
      stream.close();
      stream = null;
      following.textContent = '';
      finish(JSON.parse(e.data));
    });
    stream.addEventListener('error', (e) => {
      if (!stream) return;
      if (e.data) stream.close();
      if (stream.readyState === EventSource.CLOSED) {
        stream = null;
        following.textContent = 'reconnecting…';
        retryTimer = setTimeout(connect, Math.min(10_000, 500 * 2 ** retries++));
      }
    });
  }

  // The final status: a failed or canceled build opens its last phase, a ready one closes it
  // (its phases and their timings are the summary).
  function finish(d) {
    flushNow();  // the last lines, while still live
    record = d;
    live = false;
    stopPolling();
    showRecord();
    const last = sections[sections.length - 1];
    if (last) {
      last.details.open = d.status !== 'ready';
      last.details.classList.add(d.status);
    }
    jump.disabled = !firstError(lines, failed());
  }

  // The record while the build runs (its status moves through the steps); the stream says when
  // it ends.
  let started = false;
  const stopPolling = poll(async () => {
    if (closed || (record && !running())) return;
    let d;
    try {
      d = await api('GET', base);
    } catch (e) {
      if (e.status === 404) stopPolling();  // no such deployment: asking again will not help
      throw e;
    }
    if (closed || (record && !running())) return;
    record = d;
    showRecord();
    if (!started) {
      started = true;
      live = running();
      connect();
    }
  }, 2000);

  return () => {
    closed = true;
    stopPolling();
    if (stream) stream.close();
    if (frame) cancelAnimationFrame(frame);
    clearTimeout(retryTimer);
    clearTimeout(searchTimer);
    clearInterval(ticker);
    document.removeEventListener('keydown', onKey);
    if (globalThis.CSS && CSS.highlights) CSS.highlights.delete('log-search');
  };
}
