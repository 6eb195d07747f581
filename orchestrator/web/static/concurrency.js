// Concurrency (``/concurrency``): each cross-run tag limit with its holders and waiters,
// holders whose run has ended flagged (a leaked slot) with a Free button; forms to set and
// delete a limit and to free a run's or a lease's slots. There is no push feed of limits:
// it refreshes every 2 s while visible, and at once when a run changes (runs feed).

import {
  api, enc, h, fill, flash, errorMessage, emptyState, throttle, whileVisible, openStream, runLink,
  fmtDuration, shortId,
} from './lib.js';

const REFRESH_MS = 2000;

export async function render(root) {
  const list = h('div', { class: 'limit-list', testid: 'limit-list', 'aria-live': 'polite' });

  const keyInput = h('input', { id: 'lim-key', type: 'text', required: true, testid: 'limit-key', placeholder: 'database', autocomplete: 'off' });
  const valueInput = h('input', { id: 'lim-value', type: 'text', testid: 'limit-value', placeholder: 'warehouse (empty: every value together)', autocomplete: 'off' });
  const perUnique = h('input', { id: 'lim-unique', type: 'checkbox', testid: 'limit-per-unique', onchange: () => {
    valueInput.disabled = perUnique.checked;
    if (perUnique.checked) valueInput.value = '';
  } });
  const numberInput = h('input', { id: 'lim-number', type: 'number', min: 0, step: 1, required: true, testid: 'limit-number', value: '1' });
  const setForm = h('form', { class: 'card form-card', 'aria-labelledby': 'h-set', onsubmit: setLimit },
    h('h2', { id: 'h-set' }, 'Set a limit'),
    h('p', { class: 'muted small' }, 'Steps whose tags match share the slots across all runs. 0 holds every match back.'),
    h('div', { class: 'form-row' },
      h('div', { class: 'field' }, h('label', { for: 'lim-key' }, 'Tag key'), keyInput),
      h('div', { class: 'field' }, h('label', { for: 'lim-value' }, 'Tag value'), valueInput),
      h('div', { class: 'field check' }, perUnique, h('label', { for: 'lim-unique' }, 'each value its own limit')),
      h('div', { class: 'field narrow' }, h('label', { for: 'lim-number' }, 'Slots'), numberInput),
      h('button', { type: 'submit', class: 'primary', testid: 'set-limit-button' }, 'Set limit')));

  const freeInput = h('input', { id: 'free-id', type: 'text', testid: 'free-id', placeholder: 'run id or lease id', autocomplete: 'off' });
  const freeForm = h('form', { class: 'card form-card', 'aria-labelledby': 'h-free', onsubmit: (e) => e.preventDefault() },
    h('h2', { id: 'h-free' }, 'Free slots'),
    h('p', { class: 'muted small' }, 'For a run whose coordinator is gone for good: frees every slot it holds or waits for.'),
    h('div', { class: 'form-row' },
      h('div', { class: 'field grow' }, h('label', { for: 'free-id' }, 'Run id or lease id'), freeInput),
      h('button', { type: 'button', testid: 'free-run-button', onclick: () => freeFromForm('run_id') }, "Free the run's slots"),
      h('button', { type: 'button', testid: 'free-lease-button', onclick: () => freeFromForm('lease_id') }, 'Free the lease')));

  fill(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Concurrency limits'), h('span', { class: 'muted small', testid: 'updated-at', role: 'status' })),
    list,
    h('div', { class: 'forms' }, setForm, freeForm));
  const updated = root.querySelector('[data-testid="updated-at"]');

  async function refresh() {
    try {
      const data = await api('GET', '/api/concurrency');
      renderLimits(data.limits || []);
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      flash(errorMessage(err));
    }
  }

  function renderLimits(limits) {
    if (!limits.length) {
      fill(list, emptyState('No concurrency limits set. Set one below — e.g. tag key ',
        h('code', {}, 'database'), ', value ', h('code', {}, 'warehouse'), ', 2 slots.'));
      return;
    }
    fill(list, limits.map(limitCard));
  }

  function limitCard(lim) {
    const title = lim.per_unique_value ? `${lim.key} (each value)` : lim.spec;
    return h('article', { class: 'card limit-card', testid: 'limit-card', data: { spec: lim.spec } },
      h('header', { class: 'card-head' },
        h('h2', {}, h('code', {}, title)),
        h('span', { class: 'limit-num' }, lim.limit === null ? 'limit deleted — slots still held' : `limit ${lim.limit}`),
        h('span', { class: 'grow' }),
        h('button', { type: 'button', onclick: () => edit(lim) }, 'Edit'),
        h('button', { type: 'button', class: 'danger', testid: 'delete-limit-button', disabled: lim.limit === null, onclick: () => deleteLimit(lim) }, 'Delete')),
      lim.buckets.length ? lim.buckets.map((b) => bucket(lim, b))
        : h('p', { class: 'muted' }, 'No step holds or waits for this limit.'));
  }

  function bucket(lim, b) {
    const used = b.holders.length;
    return h('section', { class: 'bucket', data: { bucket: b.bucket } },
      lim.per_unique_value || b.bucket !== lim.spec ? h('h3', {}, h('code', {}, b.bucket)) : null,
      h('p', { class: 'usage' },
        h('meter', { min: 0, max: Math.max(1, b.limit ?? used), value: used, 'aria-label': `${used} of ${b.limit} slots used` }),
        ` ${used} of ${b.limit ?? '?'} slots held · ${b.waiters.length} waiting`),
      used ? h('table', { class: 'grid holders', testid: 'holders-table' },
        h('caption', {}, 'Holders'),
        h('thead', {}, h('tr', {}, ['Lease', 'Run', 'Step', 'Attempt', 'Worker', 'Held for', ''].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, b.holders.map(holderRow))) : null,
      b.waiters.length ? h('table', { class: 'grid waiters', testid: 'waiters-table' },
        h('caption', {}, 'Waiting'),
        h('thead', {}, h('tr', {}, ['Position', 'Run', 'Step', 'Priority', 'Waited for', ''].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, b.waiters.map(waiterRow))) : null);
  }

  function endedFlag(lease) {
    return h('span', { class: 'ended-flag', testid: 'ended-flag', title: 'Its run has ended but the slot is still taken' },
      '⚠ run ended — slot leaked? ',
      h('button', { type: 'button', class: 'danger small', testid: 'free-lease', onclick: () => free({ lease_id: lease.lease_id }) }, 'Free'));
  }

  function holderRow(lease) {
    return h('tr', { testid: 'holder-row', class: lease.run_ended ? 'leaked' : '', data: { leaseId: lease.lease_id, runId: lease.run_id, runEnded: String(lease.run_ended) } },
      h('td', { class: 'mono small', title: lease.lease_id }, shortLease(lease.lease_id)),
      h('td', {}, lease.run_id ? runLink(lease.run_id) : '—'),
      h('td', { class: 'mono' }, lease.step_key || '—'),
      h('td', { class: 'num' }, String(lease.attempt ?? '—')),
      h('td', { class: 'small' }, lease.worker || '—'),
      h('td', { class: 'num' }, fmtDuration(lease.held_seconds)),
      h('td', {}, lease.run_ended ? endedFlag(lease)
        : h('button', { type: 'button', class: 'small', title: 'Free this slot', onclick: () => free({ lease_id: lease.lease_id }) }, 'Free')));
  }

  function waiterRow(lease) {
    return h('tr', { testid: 'waiter-row', class: lease.run_ended ? 'leaked' : '', data: { leaseId: lease.lease_id, runId: lease.run_id, position: String(lease.position) } },
      h('td', { class: 'num' }, String(lease.position)),
      h('td', {}, lease.run_id ? runLink(lease.run_id) : '—'),
      h('td', { class: 'mono' }, lease.step_key || '—'),
      h('td', { class: 'num' }, String(lease.priority)),
      h('td', { class: 'num' }, fmtDuration(lease.waited_seconds)),
      h('td', {}, lease.run_ended ? endedFlag(lease) : null));
  }

  function edit(lim) {
    keyInput.value = lim.key;
    perUnique.checked = lim.per_unique_value;
    valueInput.disabled = lim.per_unique_value;
    valueInput.value = lim.value ?? '';
    numberInput.value = String(lim.limit ?? 1);
    numberInput.focus();
  }

  async function setLimit(event) {
    event.preventDefault();
    const key = keyInput.value.trim();
    const limit = Number(numberInput.value);
    if (!key) { flash('Give the tag key of the limit.'); keyInput.focus(); return; }
    if (!Number.isInteger(limit) || limit < 0) { flash('The limit is a whole number of slots, 0 or more.'); numberInput.focus(); return; }
    const body = { limit };
    if (perUnique.checked) body.per_unique_value = true;
    else if (valueInput.value.trim()) body.value = valueInput.value.trim();
    try {
      const result = await api('PUT', `/api/concurrency/limits/${enc(key)}`, body);
      flash(`Limit ${result.spec} set to ${result.limit}.`, 'ok');
    } catch (err) {
      flash(errorMessage(err));
    }
    refresh();
  }

  async function deleteLimit(lim) {
    const q = new URLSearchParams();
    if (lim.per_unique_value) q.set('per_unique_value', 'true');
    else if (lim.value !== null && lim.value !== undefined) q.set('value', lim.value);
    try {
      const result = await api('DELETE', `/api/concurrency/limits/${enc(lim.key)}${q.toString() ? `?${q}` : ''}`);
      flash(`Limit ${result.deleted} deleted.`, 'ok');
    } catch (err) {
      flash(errorMessage(err));
    }
    refresh();
  }

  async function free(body) {
    try {
      const result = await api('POST', '/api/concurrency/free', body);
      flash(`Freed ${result.freed} slot${result.freed === 1 ? '' : 's'}.`, 'ok');
    } catch (err) {
      flash(errorMessage(err));
    }
    refresh();
  }

  function freeFromForm(field) {
    const id = freeInput.value.trim();
    if (!id) { flash('Give a run id or a lease id.'); freeInput.focus(); return; }
    free({ [field]: id });
  }

  whileVisible(refresh, REFRESH_MS);
  const refreshSoon = throttle(refresh, 1000);
  openStream('/api/stream/runs', { run: refreshSoon });
}

function shortLease(leaseId) {
  // A lease id is "<run id>:<step>:<attempt>": the run part is long and shown in its own column.
  const [run, ...rest] = String(leaseId).split(':');
  return rest.length ? `${shortId(run)}:${rest.join(':')}` : leaseId;
}
