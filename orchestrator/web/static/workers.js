// Workers and queues (``/workers``): live workers with their queues and the steps they run,
// each queue's depth and consumers (a queue holding messages that no live worker consumes is
// flagged), and live coordinators. Refreshes every 3 s while the page is visible.

import {
  api, h, fill, flash, clearFlash, errorMessage, emptyState, whileVisible, setLive, runLink,
  fmtDuration,
} from './lib.js';

const REFRESH_MS = 3000;

export async function render(root) {
  const summary = h('p', { class: 'muted', role: 'status', testid: 'workers-summary' });
  const queues = h('div', { testid: 'queues' });
  const workers = h('div', { testid: 'workers' });
  const coordinators = h('div', { testid: 'coordinators' });
  fill(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Workers and queues'), summary),
    h('section', { 'aria-labelledby': 'h-queues' }, h('h2', { id: 'h-queues' }, 'Queues'), queues),
    h('section', { 'aria-labelledby': 'h-workers' }, h('h2', { id: 'h-workers' }, 'Workers'), workers),
    h('section', { 'aria-labelledby': 'h-coord' }, h('h2', { id: 'h-coord' }, 'Coordinators'), coordinators));

  let failing = false;

  async function refresh() {
    let data;
    try {
      data = await api('GET', '/api/workers');
    } catch (err) {
      failing = true;
      flash(errorMessage(err));
      return;
    }
    if (failing) { clearFlash(); failing = false; }
    const now = Date.now() / 1000;
    summary.textContent = `${data.workers.length} worker${data.workers.length === 1 ? '' : 's'}, `
      + `${data.running} step${data.running === 1 ? '' : 's'} running, `
      + `${data.coordinators.length} coordinator${data.coordinators.length === 1 ? '' : 's'} · updated ${new Date().toLocaleTimeString()}`;
    renderQueues(data.queues);
    renderWorkers(data.workers, now);
    renderCoordinators(data.coordinators);
  }

  function renderQueues(rows) {
    if (!rows.length) { fill(queues, emptyState('No queue known.')); return; }
    fill(queues, h('div', { class: 'table-wrap' }, h('table', { class: 'grid queues', testid: 'queues-table' },
      h('thead', {}, h('tr', {}, ['Queue', 'Messages waiting', 'Consumers', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((q) => h('tr', {
        testid: 'queue-row', class: q.no_consumer ? 'no-consumer' : '',
        data: { queue: q.name, noConsumer: String(q.no_consumer), depth: String(q.depth ?? '') },
      },
      h('td', { class: 'mono' }, q.name),
      h('td', { class: 'num' }, q.depth === null || q.depth === undefined ? '?' : String(q.depth)),
      h('td', {}, q.consumers.length ? h('span', { class: 'chips' }, q.consumers.map((c) => h('span', { class: 'chip mono' }, c)))
        : h('span', { class: 'muted' }, 'none')),
      h('td', {}, q.no_consumer ? h('strong', { class: 'warn-text', testid: 'no-consumer-flag' },
        '⚠ messages waiting, no live worker consumes this queue') : null)))))));
  }

  function renderWorkers(rows, now) {
    if (!rows.length) {
      fill(workers, emptyState('No live worker. Start one with ',
        h('code', {}, 'orchestrator worker start -f <jobs file> -Q <queue>'), '.'));
      return;
    }
    fill(workers, h('div', { class: 'table-wrap' }, h('table', { class: 'grid workers', testid: 'workers-table' },
      h('thead', {}, h('tr', {}, ['Worker', 'Host', 'PID', 'Queues', 'Code locations', 'Running'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((w) => h('tr', { testid: 'worker-row', data: { worker: w.id } },
        h('td', { class: 'mono' }, w.id),
        h('td', {}, w.hostname || '—'),
        h('td', { class: 'num' }, String(w.pid ?? '—')),
        h('td', {}, h('span', { class: 'chips' }, w.queues.map((q) => h('span', { class: 'chip mono' }, q)))),
        h('td', { class: 'small' }, w.locations.length ? w.locations.join(', ') : '—'),
        h('td', {}, w.running.length ? h('ul', { class: 'plain' }, w.running.map((r) => h('li', { testid: 'running-step' },
          runLink(r.run_id), h('span', { class: 'mono' }, `/${r.step_key}`),
          r.attempt ? h('span', { class: 'muted small' }, ` attempt ${r.attempt}`) : null,
          h('span', { class: 'muted small' }, ` · ${fmtDuration(now - r.since)}`))))
          : h('span', { class: 'muted' }, 'idle'))))))));
  }

  function renderCoordinators(rows) {
    if (!rows.length) {
      fill(coordinators, h('p', { class: 'flash flash-error' },
        'No live coordinator: queued runs will not start. Start one with ',
        h('code', {}, 'orchestrator coordinator start -f <jobs file>'), '.'));
      return;
    }
    fill(coordinators, h('ul', { class: 'plain' }, rows.map((c) => h('li', { testid: 'coordinator-row' },
      h('span', { class: 'mono' }, c.id), ` on ${c.hostname || '?'} (pid ${c.pid ?? '?'})`))));
  }

  setLive('polling');
  whileVisible(refresh, REFRESH_MS);
}
