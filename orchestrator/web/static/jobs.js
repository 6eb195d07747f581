// Jobs / Launchpad (``/``): the jobs of the code locations, and for the picked job a YAML
// config editor checked by the server as you type, op selection, tags, partition, Launch.

import { api, enc, h, fill, emptyState, queryParams, tagChips } from './lib.js';
import { createLaunchpad } from './launchpad.js';

export async function render(root) {
  const data = await api('GET', '/api/jobs');
  const jobs = data.jobs || [];
  const list = h('ul', { class: 'job-list', testid: 'job-list' });
  const pane = h('section', { class: 'launchpad-pane', 'aria-live': 'polite' });
  const brokenLocations = (data.locations || []).filter((l) => l.error);
  fill(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Jobs')),
    brokenLocations.map((loc) => h('p', { class: 'flash flash-error', role: 'alert', testid: 'location-error' },
      `Code location ${loc.location} did not load: ${loc.error}`)),
    h('div', { class: 'jobs-layout' },
      h('nav', { class: 'job-sidebar', 'aria-label': 'Jobs' }, list),
      pane));

  if (!jobs.length) {
    fill(pane, emptyState('No jobs: start the server with code locations, e.g. ',
      h('code', {}, 'orchestrator ui -f examples/distributed.py'), '.'));
    return;
  }

  const ambiguous = new Set();
  const seen = new Set();
  for (const job of jobs) {
    if (seen.has(job.name)) ambiguous.add(job.name);
    seen.add(job.name);
  }
  const jobUrl = (job) => `/?job=${enc(job.name)}${ambiguous.has(job.name) ? `&location=${enc(job.location)}` : ''}`;

  let launchpad = null;
  const items = new Map();
  let lastLocation = null;
  for (const job of jobs) {
    if (job.location !== lastLocation) {
      list.append(h('li', { class: 'job-location', role: 'presentation' }, job.location));
      lastLocation = job.location;
    }
    const link = h('a', {
      href: jobUrl(job), testid: 'job-item', data: { job: job.name, location: job.location },
      onclick: (event) => {
        if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
        event.preventDefault();
        window.history.pushState({}, '', jobUrl(job));
        openJob(job);
      },
    }, h('span', { class: 'job-name' }, job.name),
    job.description ? h('span', { class: 'job-desc' }, job.description) : null);
    items.set(job, link);
    list.append(h('li', {}, link));
  }

  function openJob(job) {
    for (const [j, link] of items) {
      if (j === job) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (launchpad) launchpad.destroy();
    document.title = `${job.name} · Jobs · orchestrator`;
    fill(pane, jobHeader(job));
    launchpad = createLaunchpad(job);
    pane.append(launchpad.element);
    launchpad.start();
  }

  function fromUrl() {
    const params = queryParams();
    const name = (params.job || [])[0];
    const location = (params.location || [])[0];
    const job = jobs.find((j) => j.name === name && (!location || j.location === location));
    if (name && !job) {
      fill(pane, emptyState(`No job named ${name}. Pick one from the list.`));
      return;
    }
    openJob(job || jobs[0]);
  }

  window.addEventListener('popstate', fromUrl);
  fromUrl();
}

function jobHeader(job) {
  return h('header', { class: 'job-head' },
    h('h2', {}, job.name),
    job.description ? h('p', {}, job.description) : null,
    h('dl', { class: 'facts' },
      h('div', {}, h('dt', {}, 'Code location'), h('dd', {}, job.location)),
      h('div', {}, h('dt', {}, 'Ops'), h('dd', {}, String(job.ops.length))),
      Object.keys(job.tags || {}).length
        ? h('div', {}, h('dt', {}, 'Job tags'), h('dd', {}, tagChips(job.tags))) : null,
      job.partitions ? h('div', {}, h('dt', {}, 'Partitions'), h('dd', {}, String(job.partitions.length))) : null,
      h('div', {}, h('dt', {}, 'Runs'), h('dd', {}, h('a', { href: `/runs?job=${enc(job.name)}` }, 'runs of this job')))));
}
