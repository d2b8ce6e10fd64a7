// The project's settings (#/projects/<name>/settings): build settings beside what the last
// build detected, environment variables per target (values masked once saved), custom domains
// (verification, certificate), deploy hooks, forge webhooks (URL per forge, secret rotation),
// the build cache, retention, and protection (basic auth) once the API reports it.
import {act, badge, button, clearError, deploymentHref, el, field, formatBytes, formatTime, poll, projectHref, replaceKeepingFocus, timeElement} from './common.js';

const targets = [
  {
    field: 'env',
    label: 'Every target',
    hint: 'used by production and preview builds unless overridden'
  },
  {field: 'production_env', label: 'Production', hint: 'overrides for production builds'},
  {
    field: 'preview_env',
    label: 'Preview',
    hint: 'overrides for preview builds (other branches, pull requests)'
  },
];

const forges = [
  {
    provider: 'github',
    label: 'GitHub',
    how:
        'Settings → Webhooks → Add webhook: Payload URL, content type application/json, the secret; events: pushes, pull requests, branch or tag deletion.'
  },
  {
    provider: 'gitlab',
    label: 'GitLab',
    how:
        'Settings → Webhooks: URL, the secret as the secret token; triggers: push events, merge request events.'
  },
  {
    provider: 'gitea',
    label: 'Gitea / Forgejo',
    how:
        'Settings → Webhooks → Add webhook (Gitea): target URL, POST, content type application/json, the secret; events: push, pull request, delete.'
  },
];

export function render(container, {name, api}) {
  const base = '/v1/projects/' + encodeURIComponent(name);
  const sections = {};
  for (const id
           of ['build', 'env', 'domains', 'hooks', 'webhooks', 'cache', 'retention',
               'protection']) {
    sections[id] =
        el('section',
           {className: 'card', id: 'settings-' + id, attrs: {'aria-labelledby': id + '-title'}});
  }
  container.append(
      el('h1', {}, 'Settings of ', el('a', {href: projectHref(name), text: name})),
      ...Object.values(sections));
  sections.protection.hidden = true;

  let project = null;
  const patch = async (body) => {
    await api('PATCH', base, body);
    project = await api('GET', base);
    draw();
  };
  const heading = (id, text) => el('h2', {id: id + '-title', text});
  // A message next to a form: what just happened (saved, removed, a secret shown once).
  const note = (id) => el('p', {id, className: 'note', attrs: {'aria-live': 'polite'}});

  // ---- build settings ----
  function drawBuild() {
    const p = project;
    const eff = p.effective_settings;
    const detected = (key) => eff && eff[key] ? eff[key].value : null;
    const input = (key, hint) => el('input', {
      id: 'build-' + key,
      value: p[key] ?? '',
      autocomplete: 'off',
      placeholder: detected(key) ? 'detected: ' + detected(key) : hint || ''
    });
    const gitUrl = input('git_url');
    const branch = input('production_branch', 'the repository\'s default branch');
    const root = input('root_dir', 'the repository\'s root');
    const install = input('install_command');
    const build = input('build_command');
    const output = input('output_dir');
    const serve = el('select', {id: 'build-serve_mode'}, [
      ['', 'automatic (static when the output has a 404.html, else spa)'],
      ['spa', 'spa: every path serves /index.html'],
      ['static', 'static: unknown paths serve 404.html']
    ].map(([v, t]) => el('option', {value: v, text: t, selected: (p.serve_mode || '') === v})));
    const shadowing = el('select', {id: 'build-redirects_shadowing'}, [
      ['files', 'a file wins over a rule without ! (Netlify; the default)'],
      ['rules', 'every rule applies, files or not (Cloudflare Pages)']
    ].map(([v, t]) => el('option', {
            value: v,
            text: t,
            selected: (p.redirects_shadowing || 'files') === v
          })));
    const scripts =
        el('input',
           {id: 'build-install_scripts', type: 'checkbox', checked: p.install_scripts !== false});
    const supersede = el(
        'input',
        {id: 'build-cancel_superseded', type: 'checkbox', checked: p.cancel_superseded !== false});
    const saved = note('build-note');
    const form = el(
        'form', {id: 'build-form'},
        el('div', {className: 'row'}, field('Git URL', gitUrl),
           field('Production branch', branch, 'empty: the default branch'),
           field('Root directory', root)),
        el('div', {className: 'row'}, field('Install command', install, 'empty: detected'),
           field('Build command', build, 'empty: detected'),
           field('Output directory', output, 'empty: detected')),
        el('div', {className: 'row'}, field('Paths outside the site', serve),
           field('_redirects and existing files', shadowing)),
        el('div', {className: 'field inline'}, scripts,
           el('label',
              {htmlFor: scripts.id, text: 'Run install scripts (lifecycle scripts of packages)'})),
        el('div', {className: 'field inline'}, supersede,
           el('label',
              {htmlFor: supersede.id, text: 'A new push cancels the running build of its branch'})),
        el('div', {className: 'actions'},
           el('button', {type: 'submit', text: 'Save build settings'})),
        saved);
    const orNull = (i) => i.value.trim() === '' ? null : i.value.trim();
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      act(form.querySelector('button[type=submit]'), async () => {
        await patch({
          git_url: gitUrl.value.trim(),
          production_branch: orNull(branch),
          root_dir: root.value.trim(),
          install_command: orNull(install),
          build_command: orNull(build),
          output_dir: orNull(output),
          serve_mode: serve.value || null,
          redirects_shadowing: shadowing.value,
          install_scripts: scripts.checked,
          cancel_superseded: supersede.checked
        });
        document.getElementById('build-note').textContent =
            'Saved: the next deployment builds with these settings.';
      });
    });
    // What the newest build that planned ran, each value from the project or detected.
    const ran = eff ?
        el('table', {className: 'stack', id: 'detected'},
           el('caption', {className: 'visually-hidden', text: 'What the last build ran'}),
           el('thead', {},
              el('tr', {},
                 ['Setting', 'Value', 'From'].map((h) => el('th', {scope: 'col', text: h})))),
           el('tbody', {},
              el('tr', {}, el('td', {dataset: {label: 'Setting'}, text: 'Framework'}),
                 el('td', {dataset: {label: 'Value'}, text: eff.framework || 'none'}),
                 el('td', {dataset: {label: 'From'}, text: 'detected'})),
              el('tr', {}, el('td', {dataset: {label: 'Setting'}, text: 'Package manager'}),
                 el('td', {dataset: {label: 'Value'}, text: eff.package_manager || 'none'}),
                 el('td', {dataset: {label: 'From'}, text: 'detected'})),
              [
                ['install_command', 'Install command'], ['build_command', 'Build command'],
                ['output_dir', 'Output directory']
              ]
                  .map(
                      ([k, label]) =>
                          el('tr', {}, el('td', {dataset: {label: 'Setting'}, text: label}),
                             el('td', {dataset: {label: 'Value'}},
                                !eff[k]                 ? '—' :
                                    eff[k].value === '' ? 'skipped' :
                                                          el('code', {text: eff[k].value})),
                             el('td', {
                               dataset: {label: 'From'},
                               text: eff[k] ? eff[k].source || '' : ''
                             }))))) :
        el('p', {
          className: 'muted',
          text: 'No build has planned yet: detection shows here after the first one.'
        });
    sections.build.replaceChildren(
        heading('build', 'Build settings'), form,
        el('h3', {}, 'What the last build ran',
           eff ?
               el('small', {}, ' (deployment ',
                  el('a',
                     {href: deploymentHref(eff.deployment_id), text: eff.deployment_id.slice(-8)}),
                  ')') :
               ''),
        ran);
  }

  // ---- environment variables ----
  function drawEnv() {
    const tables = targets.map((t) => {
      const vars = project[t.field] || {};
      const names = Object.keys(vars).sort();
      return el('div', {className: 'env-target'},
          el('h3', {}, t.label, el('small', {text: ' ' + t.hint})),
          names.length
              ? el('table', {className: 'stack', id: 'env-' + t.field},
                   el('thead', {}, el('tr', {}, ['Name', 'Value', ''].map((h) => el('th', {scope: 'col', text: h})))),
                   el('tbody', {}, names.map((n) => el('tr', {dataset: {name: n}},
                       el('td', {dataset: {label: 'Name'}}, el('code', {text: n})),
                       // Once saved a value is not shown again: a screen share must not leak it.
                       el('td', {dataset: {label: 'Value'}, className: 'masked', text: '••••••••', attrs: {'aria-label': 'value hidden'}}),
                       el('td', {}, button('Remove', (e) => act(e.target, async () => {
                         const next = {...vars};
                         delete next[n];
                         await patch({[t.field]: next});
                       }), {className: 'danger', attrs: {'aria-label': `Remove ${n} from ${t.label}`}}))))))
              : el('p', {className: 'muted', text: 'none'}));
    });
    const key = el('input', {
      id: 'env-name',
      required: true,
      autocomplete: 'off',
      pattern: '[A-Za-z_][A-Za-z0-9_]*',
      placeholder: 'API_URL'
    });
    const value = el('input', {id: 'env-value', type: 'password', autocomplete: 'new-password'});
    const target =
        el('select', {id: 'env-target'},
           targets.map((t) => el('option', {value: t.field, text: t.label})));
    const form =
        el('form', {id: 'env-form'},
           el('div', {className: 'row'}, field('Name', key), field('Value', value),
              field('Target', target), el('button', {type: 'submit', text: 'Save variable'})));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      act(form.querySelector('button[type=submit]'), async () => {
        await patch(
            {[target.value]: {...(project[target.value] || {}), [key.value.trim()]: value.value}});
        key.value = '';
        value.value = '';
        document.getElementById('env-note').textContent =
            'Saved: the next deployment of that target gets it.';
      });
    });
    sections.env.replaceChildren(
        heading('env', 'Environment variables'), el('p', {
          className: 'muted',
          text:
              'Given to the install and build steps. A target\'s own variables override those of every target.'
        }),
        ...tables, el('h3', {text: 'Add or replace a variable'}), form, note('env-note'));
  }

  // ---- domains ----
  const domainList = el('div', {id: 'domain-list'});
  // Outside the polled list: a redraw must not take what is being typed.
  const domainEditor = el('div', {id: 'domain-editor'});
  const domainNote = note('domain-note');

  // The form that changes what a domain serves: a branch's latest deployment, or production.
  // It stays open, with the API's error on the page, until a change succeeds.
  function editBranch(d) {
    const path = base + '/domains/' + encodeURIComponent(d.domain);
    const input = el('input', {
      id: 'domain-serve-branch',
      autocomplete: 'off',
      placeholder: 'a branch name',
      value: d.branch || ''
    });
    const serve = (trigger, branch) => act(trigger, async () => {
      const changed = await api('PATCH', path, {branch});
      domainEditor.replaceChildren();
      domainNote.textContent = changed.branch ?
          `${changed.domain} now serves branch ${changed.branch}.` :
          `${changed.domain} now serves production.`;
      await drawDomains();
    });
    const form =
        el('form', {id: 'domain-serve-form', dataset: {domain: d.domain}},
           el('h3', {text: 'What ' + d.domain + ' serves'}),
           el('div', {className: 'row'}, field('Branch', input),
              el('button', {type: 'submit', text: 'Serve this branch'}),
              button(
                  'Serve production', (e) => serve(e.target, null),
                  {id: 'domain-serve-production', className: 'quiet'}),
              button('Cancel', () => domainEditor.replaceChildren(), {className: 'quiet'})));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const branch = input.value.trim();
      serve(form.querySelector('button[type=submit]'), branch ? branch : null);
    });
    domainNote.textContent = '';
    domainEditor.replaceChildren(form);
    input.focus();
  }

  // The certificate's cell: its status, then what a sentence tells (expiry and issuer, the last
  // failure and the next try, OCSP stapling).
  function certificateCell(cert) {
    const kind = {issued: 'ok', expired: 'bad', failed: 'bad', issuing: 'busy'}[cert.status] ||
        'off';
    const nextTry = (ms) => (ms ? '; next try ' + formatTime(ms) : '');
    const ocsp = cert.ocsp;
    const ocspText = !ocsp              ? '' :
        ocsp.status === 'stapled'       ? 'OCSP stapled until ' + formatTime(ocsp.next_update) :
        ocsp.status === 'not_available' ? 'No OCSP: the CA runs no responder' :
        ocsp.status === 'pending'       ? 'OCSP: first response pending' :
                                          'OCSP not stapled';
    return [
      badge(cert.status, kind),
      cert.not_after ? el('small', {
        className: 'cert-detail',
        text: 'until ' + formatTime(cert.not_after) + (cert.issuer ? ', ' + cert.issuer : '')
      }) :
                       null,
      cert.renewing ? el('small', {className: 'cert-detail renewing', text: 'Renewal under way'}) :
                      null,
      cert.error ? el('span', {
        className: 'check-error cert-error',
        text: (cert.status === 'issued' && !cert.renewing ? 'Renewal failed: ' :
                                                            'Last attempt failed: ') +
            cert.error + (cert.renewing ? '' : nextTry(cert.next_attempt))
      }) :
                   null,
      ocsp ? el('small', {className: 'cert-detail ocsp', text: ocspText}) : null,
      ocsp && ocsp.error ? el('span', {
        className: 'check-error ocsp-error',
        text: `OCSP fetch failed (${ocsp.failures} in a row): ${ocsp.error}` +
            nextTry(ocsp.next_refresh)
      }) :
                           null
    ];
  }

  async function drawDomains() {
    const {domains} = await api('GET', base + '/domains');
    const dbase = base + '/domains/';
    const rows = domains.map((d) => {
      const cert = d.certificate || {status: 'none'};
      const run = (label, method, path, body, props = {}) =>
          button(label, (e) => act(e.target, async () => {
                          await api(method, path, body);
                          await drawDomains();
                        }), {
            dataset: {key: label + ':' + d.domain},
            attrs: {'aria-label': `${label} ${d.domain}`},
            ...props
          });
      return el(
          'tr', {dataset: {domain: d.domain}},
          el('td', {dataset: {label: 'Domain'}}, el('strong', {text: d.domain}),
             d.primary ? ' (primary)' : '', el('small', {
               className: 'serves',
               text: d.branch ? ' serves branch ' + d.branch : ' serves production'
             }),
             d.redirects_to ? el('small', {text: ' redirects to ' + d.redirects_to}) : ''),
          el('td', {dataset: {label: 'Ownership'}},
             badge(d.state, d.state === 'verified' ? 'ok' : 'busy'),
             d.state === 'verified' ?
                 '' :
                 el('small', {className: 'verification'}, ' Add a TXT record ',
                    el('code', {text: d.verification.txt_name}), ' = ',
                    el('code', {text: d.verification.token}),
                    ', or point the name at this platform\'s proxy (which serves the token at ',
                    el('code', {text: d.verification.url}), '), then verify.',
                    d.verification.error ? el('span', {
                      className: 'check-error',
                      text: ' Last check: ' + d.verification.error
                    }) :
                                           '')),
          el('td', {dataset: {label: 'Certificate'}}, certificateCell(cert)),
          el('td', {className: 'actions', dataset: {label: 'Actions'}},
             d.state !== 'verified' ?
                 run('Verify', 'POST', dbase + encodeURIComponent(d.domain) + '/verify') :
                 null,
             !d.primary ? run('Make primary', 'PATCH', dbase + encodeURIComponent(d.domain),
                              {primary: true}, {className: 'quiet'}) :
                          null,
             button('Change branch', () => editBranch(d), {
               className: 'quiet',
               dataset: {key: 'Change branch:' + d.domain},
               attrs: {'aria-label': `Change the branch ${d.domain} serves`}
             }),
             run('Remove', 'DELETE', dbase + encodeURIComponent(d.domain), undefined,
                 {className: 'danger'})));
    });
    replaceKeepingFocus(
        domainList,
        rows.length ? el('table', {className: 'stack', id: 'domains'},
                         el('thead', {},
                            el('tr', {},
                               ['Domain', 'Ownership', 'Certificate', 'Actions'].map(
                                   (h) => el('th', {scope: 'col', text: h})))),
                         el('tbody', {}, rows)) :
                      el('p', {className: 'muted', text: 'No custom domain.'}));
  }

  // Drawn once: the list above it is polled, the field keeps what is being typed.
  function drawDomainForm() {
    const input = el(
        'input',
        {id: 'domain-name', required: true, autocomplete: 'off', placeholder: 'www.example.com'});
    // Empty: the domain serves production; a branch name: that branch's latest deployment.
    const branch =
        el('input', {id: 'domain-branch', autocomplete: 'off', placeholder: 'production'});
    const form = el(
        'form', {id: 'domain-form'},
        el('div', {className: 'row'}, field('Add a domain', input),
           field('Branch (optional)', branch), el('button', {type: 'submit', text: 'Add domain'})));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      act(form.querySelector('button[type=submit]'), async () => {
        const body = {domain: input.value.trim()};
        if (branch.value.trim()) {
          body.branch = branch.value.trim();
        }
        await api('POST', base + '/domains', body);
        input.value = '';
        branch.value = '';
        await drawDomains();
      });
    });
    sections.domains.replaceChildren(
        heading('domains', 'Domains'), domainList, domainNote, domainEditor, form);
  }

  // ---- deploy hooks ----
  async function drawHooks(created) {
    const {hooks} = await api('GET', base + '/hooks');
    const input = el('input', {
      id: 'hook-branch',
      required: true,
      autocomplete: 'off',
      value: project.production_branch || '',
      placeholder: 'main'
    });
    const form =
        el('form', {id: 'hook-form'},
           el('div', {className: 'row'}, field('Branch', input),
              el('button', {type: 'submit', text: 'Create deploy hook'})));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      act(form.querySelector('button[type=submit]'),
          async () => drawHooks(await api('POST', base + '/hooks', {branch: input.value.trim()})));
    });
    sections.hooks.replaceChildren(heading('hooks', 'Deploy hooks'),
        el('p', {className: 'muted', text: 'A URL that deploys a branch when anything POSTs to it (a CMS, a cron job). Its secret is shown once.'}),
        created ? el('div', {id: 'hook-created'}, el('p', {text: `Hook for ${created.branch}, shown this once:`}),
                     el('code', {className: 'secret', text: `curl -X POST ${location.origin}${created.path}`})) : '',
        hooks.length ? el('table', {className: 'stack', id: 'hooks'},
                          el('thead', {}, el('tr', {}, ['Hook', 'Branch', 'Created', ''].map((h) => el('th', {scope: 'col', text: h})))),
                          el('tbody', {}, hooks.map((h) => el('tr', {},
                              el('td', {dataset: {label: 'Hook'}}, el('code', {text: h.id})),
                              el('td', {dataset: {label: 'Branch'}, text: h.branch}),
                              el('td', {dataset: {label: 'Created'}}, timeElement(h.created_at)),
                              el('td', {}, button('Delete', (e) => act(e.target, async () => {
                                await api('DELETE', base + '/hooks/' + encodeURIComponent(h.id));
                                await drawHooks();
                              }), {className: 'danger', attrs: {'aria-label': `Delete the hook of ${h.branch} (${h.id})`}}))))))
                     : el('p', {className: 'muted', text: 'No deploy hook.'}),
        form);
  }

  // ---- forge webhooks ----
  function drawWebhooks(rotated) {
    const rotate = button(
        rotated ? 'Rotate the secret again' : 'Rotate webhook secret',
        (e) => act(e.target, async () => {
          drawWebhooks(await api('POST', base + '/webhook-secret'));
        }), {id: 'rotate-secret'});
    sections.webhooks.replaceChildren(
        heading('webhooks', 'Git webhooks'), el('p', {
          className: 'muted',
          text:
              'A push to the production branch deploys production; any other branch or a pull request deploys a preview. The forge signs each delivery with the project\'s secret.'
        }),
        el('table', {className: 'stack', id: 'webhook-urls'},
           el('thead', {},
              el('tr', {},
                 ['Forge', 'Payload URL', 'Where'].map((h) => el('th', {scope: 'col', text: h})))),
           el('tbody', {},
              forges.map(
                  (f) =>
                      el('tr', {}, el('td', {dataset: {label: 'Forge'}, text: f.label}),
                         el('td', {dataset: {label: 'URL'}}, el('code', {
                              text: `${location.origin}/v1/webhooks/${f.provider}/${
                                  encodeURIComponent(name)}`
                            })),
                         el('td', {dataset: {label: 'Where'}, text: f.how}))))),
        rotated ?
            el('div', {id: 'webhook-secret'},
               el('p',
                  {text: 'The new secret, shown this once (the previous one no longer verifies):'}),
               el('code', {className: 'secret', text: rotated.secret})) :
            el('p', {
              className: 'muted',
              text:
                  'The secret is stored but never shown again: rotate it to get a new one to paste into the forge.'
            }),
        el('div', {className: 'actions'}, rotate));
  }

  // ---- build cache ----
  function drawCache(removed) {
    const usage = project.usage || {};
    const cacheBytes = usage.cache ? usage.cache.bytes : null;
    sections.cache.replaceChildren(
        heading('cache', 'Build cache'),
        el('p', {}, 'Size: ', el('strong', {id: 'cache-size', text: formatBytes(cacheBytes)}),
           el('small', {
             text: ` · all files kept: ${formatBytes(usage.total_bytes)} for ${
                 usage.deployments ?? 0} deployments (${usage.pruned ?? 0} pruned)`
           })),
        el('p', {
          className: 'muted',
          text:
              'node_modules and framework caches restored into the next build of a branch. Clearing it makes the next build install from scratch.'
        }),
        removed !== undefined ?
            el('p', {id: 'cache-note', text: `Cleared (${removed} objects removed).`}) :
            '',
        el('div', {className: 'actions'},
           button('Clear cache', (e) => act(e.target, async () => {
                                   const r = await api('DELETE', base + '/cache');
                                   project = await api('GET', base);
                                   drawCache(r.removed);
                                 }), {id: 'clear-cache', className: 'danger'})));
  }

  // ---- retention ----
  function drawRetention() {
    const r = project.retention || {};
    const keep = el('input', {
      id: 'keep-deployments',
      type: 'number',
      min: 1,
      value: project.keep_deployments ?? '',
      placeholder: `platform default (${r.keep_deployments})`
    });
    const days = el('input', {
      id: 'keep-production-days',
      type: 'number',
      min: 0,
      value: project.keep_production_days ?? '',
      placeholder: `platform default (${r.keep_production_days})`
    });
    const form = el(
        'form', {id: 'retention-form'},
        el('div', {className: 'row'},
           field('Keep the newest ready deployments', keep, 'empty: the platform\'s default'),
           field(
               'Keep what was in production within (days)', days, 'empty: the platform\'s default'),
           el('button', {type: 'submit', text: 'Save retention'})));
    const num = (i) => i.value === '' ? null : Number(i.value);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      act(form.querySelector('button[type=submit]'),
          () => patch({keep_deployments: num(keep), keep_production_days: num(days)}));
    });
    sections.retention.replaceChildren(
        heading('retention', 'Retention'), el('p', {
          className: 'muted',
          text: `In force: the newest ${
              r.keep_deployments} ready deployments, and any that was in production within ${
              r.keep_production_days} days, keep their files; older ones are pruned (their record stays).`
        }),
        form);
  }

  // ---- protection (basic auth), once the API has the field ----
  function drawProtection() {
    const pr = project.protection;
    sections.protection.hidden = pr === undefined;
    if (pr === undefined)
      return;
    const current = pr || {scope: 'off'};
    const scope = el('select', {id: 'protection-scope'}, [
      ['off', 'off: public'], ['previews', 'previews only'], ['all', 'every deployment']
    ].map(([v, t]) => el('option', {value: v, text: t, selected: current.scope === v})));
    const user = el(
        'input', {id: 'protection-username', autocomplete: 'off', value: current.username || ''});
    const pass = el('input', {
      id: 'protection-password',
      type: 'password',
      autocomplete: 'new-password',
      placeholder: current.password_set ? 'unchanged' : ''
    });
    const form =
        el('form', {id: 'protection-form'},
           el('div', {className: 'row'}, field('Protect', scope), field('Username', user),
              field('Password', pass, current.password_set ? 'set; empty keeps it' : ''),
              el('button', {type: 'submit', text: 'Save protection'})));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      // {scope} alone keeps the stored credentials; new ones need both parts.
      const body = {scope: scope.value};
      if (scope.value !== 'off' && (pass.value || user.value.trim() !== (current.username || ''))) {
        body.username = user.value.trim();
        body.password = pass.value;
      }
      act(form.querySelector('button[type=submit]'), async () => {
        await patch({protection: body});
        document.getElementById('protection-note').textContent = body.scope === 'off' ?
            'Protection is off: the sites are public.' :
            'Saved: the proxy asks for these credentials now.';
      });
    });
    sections.protection.replaceChildren(
        heading('protection', 'Protection'), el('p', {
          className: 'muted',
          text:
              'Visitors must give this username and password (HTTP basic auth) before the site answers: on previews only (the branch, pull-request and immutable URLs), or everywhere. The password is stored hashed and never shown.'
        }),
        el('p', {id: 'protection-state'}, 'Now: ',
           pr ? badge(`${pr.scope} (user ${pr.username})`, 'busy') : badge('off: public', 'off')),
        form, note('protection-note'));
  }

  function draw() {
    drawBuild();
    drawEnv();
    drawCache();
    drawRetention();
    drawProtection();
  }

  let first = true;
  // Domains change state on their own (verification, certificates): they are polled; the rest
  // is drawn when loaded or saved, so that polling never rewrites a form being typed into.
  const stop = poll(async () => {
    if (first) {
      first = false;
      project = await api('GET', base);
      draw();
      drawDomainForm();
      drawWebhooks();
      await drawHooks();
      clearError();
    }
    await drawDomains();
  }, 5000);
  return stop;
}
