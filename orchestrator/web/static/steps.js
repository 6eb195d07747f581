// The run page's steps table: state, attempts, worker, times, error or note, and for a step
// waiting for a concurrency slot, why (which limit, who holds it, its place in line). Rows
// are keyed by step and rebuilt only when the step changed; their checkboxes (steps to
// re-execute) survive refreshes.

import { h, fill, stateBadge, runLink, timeEl, fmtDuration, shortId } from './lib.js';

const MAX_HOLDERS = 5;

/** @param {{onCheck: (keys: string[]) => void}} hooks */
export function createSteps({ onCheck }) {
  const tbody = h('tbody');
  const all = h('input', { type: 'checkbox', 'aria-label': 'Select every step', onchange: () => {
    for (const entry of rows.values()) entry.box.checked = all.checked;
    changed();
  } });
  const element = h('div', { class: 'table-wrap steps-wrap' },
    h('table', { class: 'grid steps', testid: 'steps-table' },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', class: 'narrow' }, all),
        ['Step', 'State', 'Attempts', 'Worker', 'Started', 'Duration', 'Details'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody));
  const empty = h('p', { class: 'empty' }, 'No steps known yet: the run has not been planned.');
  const wrapper = h('div', {}, element, empty);
  const rows = new Map(); // step key -> {tr, box, sig}

  function changed() {
    onCheck([...rows].filter(([, e]) => e.box.checked).map(([key]) => key));
  }

  function cells(step, runId) {
    const live = !step.end_time && step.start_time && step.state === 'running';
    return [
      h('td', { class: 'mono' }, step.step_key),
      h('td', {}, stateBadge(step.state)),
      h('td', { class: 'num' }, String(step.attempts ?? 0)),
      h('td', { class: 'small' }, step.worker || h('span', { class: 'muted' }, '—')),
      h('td', {}, timeEl(step.start_time)),
      h('td', { class: 'num', data: live ? { since: String(step.start_time) } : {} },
        live ? fmtDuration(Date.now() / 1000 - step.start_time) : fmtDuration(step.duration_seconds)),
      h('td', { class: 'details' },
        step.state === 'waiting for slot' ? waitReason(step.wait, runId) : null,
        step.error ? h('p', { class: 'step-error', testid: 'step-error' }, step.error) : null,
        // a waiting step's note says what its wait reason shows in full
        step.note && !(step.state === 'waiting for slot' && step.wait)
          ? h('p', { class: 'step-note', testid: 'step-note' }, step.note) : null),
    ];
  }

  return {
    element: wrapper,
    /** Show ``steps`` (the run detail's) of run ``runId``. */
    update(steps, runId) {
      empty.hidden = steps.length > 0;
      element.hidden = steps.length === 0;
      const keep = new Set();
      let previous = null;
      for (const step of steps) {
        keep.add(step.step_key);
        const sig = JSON.stringify([step.state, step.attempts, step.worker, step.start_time,
          step.end_time, step.error, step.note, step.wait]);
        let entry = rows.get(step.step_key);
        if (!entry) {
          const box = h('input', { type: 'checkbox', 'aria-label': `Select ${step.step_key}`, onchange: changed });
          const tr = h('tr', { testid: 'step-row', id: `step-${step.step_key}` }, h('td', { class: 'narrow' }, box));
          entry = { tr, box, sig: null };
          rows.set(step.step_key, entry);
          if (previous) previous.after(tr);
          else tbody.prepend(tr);
        }
        if (entry.sig !== sig) {
          entry.tr.dataset.step = step.step_key;
          entry.tr.dataset.state = step.state;
          entry.tr.classList.toggle('waiting', step.state === 'waiting for slot');
          entry.tr.classList.toggle('failed', step.state === 'failed');
          while (entry.tr.children.length > 1) entry.tr.lastChild.remove();
          entry.tr.append(...cells(step, runId));
          entry.sig = sig;
        }
        previous = entry.tr;
      }
      for (const [key, entry] of rows) {
        if (!keep.has(key)) { entry.tr.remove(); rows.delete(key); }
      }
    },
  };
}

/** "waiting for slot: <bucket> (limit N) held by <run>/<step> …, position P of W". */
export function waitReason(wait, runId) {
  const box = h('div', { class: 'wait-reason', testid: 'wait-reason' });
  if (!wait || !wait.limits || !wait.limits.length) {
    fill(box, 'waiting for a concurrency slot',
      wait ? ` (waited ${fmtDuration(wait.waited_seconds)})` : '');
    return box;
  }
  for (const lim of wait.limits) {
    const holders = lim.holders || [];
    const shown = holders.slice(0, MAX_HOLDERS).map((lease, i) => [
      i ? ', ' : '',
      lease.run_id === runId
        ? h('span', { class: 'mono', title: `this run, step ${lease.step_key}` }, `this run/${lease.step_key}`)
        : [runLink(lease.run_id, shortId(lease.run_id)), h('span', { class: 'mono' }, `/${lease.step_key}`)],
    ]);
    box.append(h('p', { data: { bucket: lim.bucket } },
      'waiting for slot: ', h('b', { class: 'mono' }, lim.bucket),
      ` (limit ${lim.limit ?? '?'})`,
      holders.length ? [' held by ', shown, holders.length > MAX_HOLDERS ? ` and ${holders.length - MAX_HOLDERS} more` : '']
        : (lim.limit === 0 ? ' — limit 0 holds every match back' : ' — no holder now: a slot should be granted shortly'),
      `, position ${lim.position ?? '?'} of ${lim.waiters}`));
  }
  box.append(h('p', { class: 'muted small' },
    `waited ${fmtDuration(wait.waited_seconds)} · priority ${wait.priority} · `,
    h('a', { href: '/concurrency' }, 'concurrency limits')));
  return box;
}
