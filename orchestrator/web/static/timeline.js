// The run page's step timeline (a Gantt chart): one row per step, one absolutely positioned
// bar per segment (waiting / queued / running, coloured by outcome). An op mapped over a
// dynamic output is one row (``process[*]``) with one bar from its first start to its last
// outcome; its steps' rows are built only while it is open. Positions are in seconds from the
// run's first segment, scaled by one CSS variable (--k, percent per second) on the chart:
// moving "now" rewrites that variable and the open bars' widths, nothing else, and a row's
// bars are rebuilt only when its segments change. Fast with 1,000 steps.

import { h, fill, fmtClock, fmtDuration } from './lib.js';
import { PAGE, displayItems, toggleButton } from './groups.js';

const NICE_STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
  7200, 10800, 21600, 43200, 86400];

const LEGEND = [
  ['k-waiting', 'waiting for a slot'], ['k-queued', 'queued'], ['k-running', 'running'],
  ['o-success', 'succeeded'], ['o-failure', 'failed'], ['o-retry', 'retried'],
  ['o-lost', 'lost'], ['o-stopped', 'stopped (run ended)'],
];

export function createTimeline() {
  const axis = h('div', { class: 'tl-axis', 'aria-hidden': 'true' });
  const rows = h('div', { class: 'tl-rows', role: 'list' });
  const chart = h('div', { class: 'tl-chart', testid: 'timeline' },
    h('div', { class: 'tl-row tl-head' }, h('div', { class: 'tl-label' }, 'Step'), axis),
    rows);
  const empty = h('p', { class: 'muted', hidden: true }, 'No step has been launched yet.');
  const element = h('div', { class: 'timeline' },
    h('ul', { class: 'legend', 'aria-label': 'Legend' },
      LEGEND.map(([cls, text]) => h('li', {}, h('span', { class: `swatch bar ${cls}` }), text))),
    h('div', { class: 'tl-scroll' }, chart),
    empty);

  const byStep = new Map(); // step key -> {row, track, sig}
  let open = []; // [element, start] of bars without an end
  let t0 = null;
  let tEnd = null;
  let finished = false;

  function barFor(step, seg, now) {
    const end = seg.end ?? now;
    const outcome = seg.outcome ? ` o-${seg.outcome}` : '';
    const bar = h('div', {
      class: `bar k-${seg.kind}${outcome}${seg.end === null || seg.end === undefined ? ' open' : ''}`,
      testid: 'timeline-bar',
      data: { step, kind: seg.kind, outcome: seg.outcome || '' },
      title: `${step} — ${seg.kind}${seg.attempt ? ` (attempt ${seg.attempt})` : ''}`
        + `${seg.outcome ? `: ${seg.outcome}` : ''}\n${fmtClock(seg.start)} → `
        + `${seg.end ? fmtClock(seg.end) : 'now'} (${fmtDuration(end - seg.start)})`,
    });
    bar.style.setProperty('--s', (seg.start - t0).toFixed(3));
    bar.style.setProperty('--d', Math.max(0, end - seg.start).toFixed(3));
    if (seg.end === null || seg.end === undefined) open.push([bar, seg.start]);
    return bar;
  }

  function renderAxis() {
    const span = tEnd - t0;
    const step = NICE_STEPS.find((s) => span / s <= 8) || span / 8;
    const ticks = [];
    for (let s = 0; s <= span + 1e-9; s += step) {
      const tick = h('span', { class: 'tick' }, s === 0 ? fmtClock(t0).slice(0, 8) : `+${fmtDuration(s)}`);
      tick.style.setProperty('--s', s.toFixed(3));
      ticks.push(tick);
    }
    fill(axis, ticks);
  }

  function scale(now) {
    tEnd = finished ? tEnd : Math.max(now, tEnd || now);
    const span = Math.max(1, tEnd - t0);
    chart.style.setProperty('--k', (100 / span).toFixed(6));
    for (const [bar, start] of open) bar.style.setProperty('--d', Math.max(0, now - start).toFixed(3));
    renderAxis();
  }

  function groupBar(group, now) {
    if (group.start_time === null || group.start_time === undefined) return [];
    const finished = group.end_time !== null && group.end_time !== undefined;
    const end = finished ? group.end_time : now;
    const outcome = { succeeded: 'success', failed: 'failure' }[group.state] || '';
    const bar = h('div', {
      class: `bar group k-running${outcome && finished ? ` o-${outcome}` : ''}${finished ? '' : ' open'}`,
      testid: 'timeline-group-bar',
      data: { group: group.group, state: group.state },
      title: `${group.label} — ${group.step_count} steps, ${group.state}\n${fmtClock(group.start_time)} → `
        + `${finished ? fmtClock(end) : 'now'} (${fmtDuration(end - group.start_time)})`,
    });
    bar.style.setProperty('--s', (group.start_time - t0).toFixed(3));
    bar.style.setProperty('--d', Math.max(0, end - group.start_time).toFixed(3));
    if (!finished) open.push([bar, group.start_time]);
    return [bar];
  }

  /** What one display item draws: its label, its bars, and a signature of both. */
  function view(item, now, expanded, onToggle, onMore) {
    if (item.kind === 'step') {
      const { step } = item;
      return {
        sig: JSON.stringify(step.timeline || []),
        cls: item.member ? 'tl-row tl-member' : 'tl-row',
        data: { step: step.step_key },
        label: () => h('div', { class: 'tl-label', title: step.step_key }, step.step_key),
        bars: () => (step.timeline || []).map((seg) => barFor(step.step_key, seg, now)),
      };
    }
    if (item.kind === 'group') {
      const { group } = item;
      const isOpen = expanded.has(group.group);
      return {
        sig: JSON.stringify([group.start_time, group.end_time, group.state, group.step_count, isOpen]),
        cls: 'tl-row tl-group',
        data: { group: group.group },
        testid: `timeline-group-${group.group}`,
        label: () => h('div', { class: 'tl-label', title: group.label }, toggleButton(group, isOpen, onToggle)),
        bars: () => groupBar(group, now),
      };
    }
    const rest = item.total - item.shown;
    return {
      sig: JSON.stringify([item.shown, item.total]),
      cls: 'tl-row tl-member',
      data: { more: item.group.group },
      label: () => h('div', { class: 'tl-label' }, h('button', {
        type: 'button', class: 'link', onclick: () => onMore(item.group.group, item.shown + PAGE),
      }, `${rest} more…`)),
      bars: () => [],
    };
  }

  return {
    element,
    /** Draw ``steps`` and ``groups`` (the run detail's) of ``run`` as of ``now`` (seconds);
     * groups whose handle is in ``expanded`` are open, showing ``limits.get(handle)`` steps. */
    update(steps, groups, run, now, { expanded, limits, onToggle, onMore }) {
      finished = Boolean(run.end_time);
      let first = Infinity;
      let last = -Infinity;
      for (const step of steps) {
        for (const seg of step.timeline || []) {
          first = Math.min(first, seg.start);
          last = Math.max(last, seg.end ?? seg.start);
        }
      }
      const anyBar = first !== Infinity;
      empty.hidden = anyBar;
      chart.hidden = !anyBar;
      if (!anyBar) return;
      const newT0 = Math.min(first, run.start_time ?? first);
      const rebuildAll = newT0 !== t0;
      t0 = newT0;
      tEnd = finished ? Math.max(run.end_time, last) : Math.max(now, last);
      if (rebuildAll) {
        byStep.clear();
        rows.replaceChildren();
      }
      const keep = new Set();
      let previous = null;
      for (const item of displayItems(steps, groups, expanded, limits)) {
        keep.add(item.key);
        const v = view(item, now, expanded, onToggle, onMore);
        let entry = byStep.get(item.key);
        if (!entry) {
          const track = h('div', { class: 'tl-track' });
          const row = h('div', { class: v.cls, role: 'listitem', testid: v.testid, data: v.data }, v.label(), track);
          entry = { row, track, sig: null };
          byStep.set(item.key, entry);
        }
        if ((previous ? previous.nextSibling : rows.firstChild) !== entry.row) {
          if (previous) previous.after(entry.row);
          else rows.prepend(entry.row);
        }
        if (entry.sig !== v.sig) {
          open = open.filter(([bar]) => bar.parentNode !== entry.track);
          entry.row.firstChild.replaceWith(v.label());
          fill(entry.track, v.bars());
          entry.sig = v.sig;
        }
        previous = entry.row;
      }
      for (const [key, entry] of byStep) {
        if (!keep.has(key)) { entry.row.remove(); byStep.delete(key); }
      }
      open = open.filter(([bar]) => bar.isConnected);
      scale(now);
    },
    /** Move "now" (a live run): the scale and the open bars follow. */
    tick(now) {
      if (t0 !== null && !finished) scale(now);
    },
  };
}
