// The one page shell: picks the page of the current path, highlights its nav link and
// renders it into <main id="app">. Pages are modules loaded on demand.

import { fill, h, errorMessage } from './lib.js';

const ROUTES = [
  { page: 'jobs', title: 'Jobs', match: /^\/$/, module: './jobs.js' },
  { page: 'runs', title: 'Runs', match: /^\/runs\/?$/, module: './runs.js' },
  { page: 'runs', title: 'Run', match: /^\/runs\/([^/]+)\/?$/, module: './run.js' },
  { page: 'concurrency', title: 'Concurrency', match: /^\/concurrency\/?$/, module: './concurrency.js' },
  { page: 'workers', title: 'Workers', match: /^\/workers\/?$/, module: './workers.js' },
];

async function main() {
  const root = document.getElementById('app');
  const path = window.location.pathname;
  const route = ROUTES.find((r) => r.match.test(path));
  for (const link of document.querySelectorAll('.topbar nav a')) {
    if (route && link.dataset.page === route.page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!route) {
    fill(root, h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '/runs' }, 'See the runs.')));
    return;
  }
  document.title = `${route.title} · orchestrator`;
  const args = path.match(route.match).slice(1).map(decodeURIComponent);
  try {
    const module = await import(route.module);
    root.replaceChildren();
    await module.render(root, ...args);
  } catch (err) {
    fill(root, h('h1', {}, route.title),
      h('p', { class: 'flash flash-error', role: 'alert', testid: 'page-error' }, errorMessage(err)),
      h('p', {}, h('a', { href: '/runs' }, 'All runs'), ' · ', h('a', { href: '/' }, 'Jobs')));
  }
}

/** Log out means something only when the server asks for a token. */
async function showLogout() {
  try {
    const health = await (await fetch('/api/health')).json();
    const form = document.querySelector('form.logout');
    if (form && health.auth === false) form.hidden = true;
  } catch (_err) {
    // the server is away: leave the button; the page says what failed
  }
}

showLogout();
main();
