// The run page's steps table: state, attempts, worker, times, error or note, and for a step
// waiting for a concurrency slot, why (which limit, who holds it, its place in line). An op
// mapped over a dynamic output is one collapsible group row (``process[*]``, its steps counted
// per state); its steps are rendered only while it is open (see groups.js). Rows are keyed by
// step (or group) and rebuilt only when they changed; their checkboxes (steps to re-execute;
// a group's selects its op, every mapped step) survive refreshes and collapsing.

import { h, fill, stateBadge, runLink, timeEl, fmtDuration, shortId } from './lib.js';
import { PAGE, countBadges, displayItems, toggleButton } from './groups.js';

const MAX_HOLDERS = 5;

/** @param {{onCheck: (keys: string[]) => void, onToggle: (handle: string) => void,
 *           onMore: (handle: string, shown: number) => void}} hooks */
export function createSteps({ onCheck, onToggle, onMore }) {
  const tbody = h('tbody');
  const all = h('input', { type: 'checkbox', 'aria-label': 'Select every step', onchange: () => {
    for (const [key, entry] of rows) {
      if (!entry.box) continue;
      entry.box.checked = all.checked;
      if (all.checked) checked.add(entry.selects || key);
    }
    if (!all.checked) checked.clear();
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
  const rows = new Map(); // item key -> {tr, box, selects, sig}
  const checked = new Set(); // step keys and op handles (groups) to re-execute

  function changed() {
    onCheck([...checked]);
  }

  function checkbox(label, value) {
    const box = h('input', { type: 'checkbox', 'aria-label': `Select ${label}`, checked: checked.has(value),
      onchange: () => { if (box.checked) checked.add(value); else checked.delete(value); changed(); } });
    return box;
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

  function groupCells(group, open) {
    const live = !group.end_time && group.start_time && group.state !== 'not started';
    return [
      h('td', { class: 'mono' }, toggleButton(group, open, onToggle)),
      h('td', {}, stateBadge(group.state)),
      h('td', { class: 'num muted' }, ''),
      h('td', { class: 'small' }, h('span', { class: 'muted' }, '—')),
      h('td', {}, timeEl(group.start_time)),
      h('td', { class: 'num', data: live ? { since: String(group.start_time) } : {} },
        live ? fmtDuration(Date.now() / 1000 - group.start_time) : fmtDuration(group.duration_seconds)),
      h('td', { class: 'details' },
        group.step_count ? countBadges(group) : null,
        group.note ? h('p', { class: 'step-note', testid: 'group-note' }, group.note) : null),
    ];
  }

  function render(item, runId, expanded) {
    if (item.kind === 'step') {
      const { step } = item;
      return {
        sig: JSON.stringify([step.state, step.attempts, step.worker, step.start_time, step.end_time,
          step.error, step.note, step.wait, Boolean(item.member)]),
        make: () => {
          const box = checkbox(step.step_key, step.step_key);
          return { tr: h('tr', { testid: 'step-row', id: `step-${step.step_key}` }, h('td', { class: 'narrow' }, box)), box };
        },
        update: (tr) => {
          tr.dataset.step = step.step_key;
          tr.dataset.state = step.state;
          tr.classList.toggle('member', Boolean(item.member));
          if (item.member) tr.dataset.group = step.group; else delete tr.dataset.group;
          tr.classList.toggle('waiting', step.state === 'waiting for slot');
          tr.classList.toggle('failed', step.state === 'failed');
          tr.append(...cells(step, runId));
        },
      };
    }
    if (item.kind === 'group') {
      const { group } = item;
      const open = expanded.has(group.group);
      return {
        sig: JSON.stringify([group, open]),
        selects: group.group,
        make: () => {
          const box = checkbox(`every step of ${group.label}`, group.group);
          return { tr: h('tr', { testid: `step-group-${group.group}`, class: 'group-row' }, h('td', { class: 'narrow' }, box)), box };
        },
        update: (tr) => {
          tr.dataset.group = group.group;
          tr.dataset.state = group.state;
          tr.dataset.count = String(group.step_count);
          tr.setAttribute('aria-expanded', String(open));
          tr.classList.toggle('failed', group.state === 'failed');
          tr.append(...groupCells(group, open));
        },
      };
    }
    const rest = item.total - item.shown;
    return {
      sig: JSON.stringify([item.shown, item.total]),
      make: () => ({ tr: h('tr', { class: 'member more-row', testid: 'group-more' }, h('td', { class: 'narrow' })), box: null }),
      update: (tr) => {
        tr.dataset.group = item.group.group;
        tr.append(h('td', { colspan: '7' }, h('button', { type: 'button', class: 'link', onclick: () => onMore(item.group.group, item.shown + PAGE) },
          `Show ${Math.min(rest, PAGE)} more of ${rest} (${item.total} steps)`)));
      },
    };
  }

  return {
    element: wrapper,
    /** Show ``steps`` and ``groups`` (the run detail's) of run ``runId``: the groups whose
     * handle is in ``expanded`` open, each with at most ``limits.get(handle)`` steps. */
    update(steps, groups, runId, expanded, limits) {
      const items = displayItems(steps, groups, expanded, limits);
      empty.hidden = items.length > 0;
      element.hidden = items.length === 0;
      const keep = new Set();
      let previous = null;
      for (const item of items) {
        keep.add(item.key);
        const view = render(item, runId, expanded);
        let entry = rows.get(item.key);
        if (!entry) {
          entry = { ...view.make(), selects: view.selects, sig: null };
          rows.set(item.key, entry);
        }
        if ((previous ? previous.nextSibling : tbody.firstChild) !== entry.tr) {
          if (previous) previous.after(entry.tr);
          else tbody.prepend(entry.tr);
        }
        if (entry.sig !== view.sig) {
          while (entry.tr.children.length > 1) entry.tr.lastChild.remove();
          view.update(entry.tr);
          entry.sig = view.sig;
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
