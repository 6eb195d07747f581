// The run page's step timeline (a Gantt chart): one row per step, one absolutely positioned
// bar per segment (waiting / queued / running, coloured by outcome). Positions are in
// seconds from the run's first segment, scaled by one CSS variable (--k, percent per second)
// on the chart: moving "now" rewrites that variable and the open bars' widths, nothing else,
// and a step's bars are rebuilt only when its segments change. Fast with 1,000 steps.

import { h, fill, fmtClock, fmtDuration } from './lib.js';

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

  return {
    element,
    /** Draw ``steps`` (the run detail's) of ``run`` as of ``now`` (seconds). */
    update(steps, run, now) {
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
      open = open.filter(([bar]) => bar.isConnected);
      for (const step of steps) {
        const sig = JSON.stringify(step.timeline || []);
        let entry = byStep.get(step.step_key);
        if (!entry) {
          const track = h('div', { class: 'tl-track' });
          const row = h('div', { class: 'tl-row', role: 'listitem', data: { step: step.step_key } },
            h('div', { class: 'tl-label', title: step.step_key }, step.step_key), track);
          entry = { row, track, sig: null };
          byStep.set(step.step_key, entry);
          rows.append(row);
        }
        if (entry.sig !== sig) {
          open = open.filter(([bar]) => bar.parentNode !== entry.track);
          fill(entry.track, (step.timeline || []).map((seg) => barFor(step.step_key, seg, now)));
          entry.sig = sig;
        }
      }
      scale(now);
    },
    /** Move "now" (a live run): the scale and the open bars follow. */
    tick(now) {
      if (t0 !== null && !finished) scale(now);
    },
  };
}
