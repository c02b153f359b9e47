// Offline support. On install, the service worker caches every file of the build (listed in
// precache.json, written by webpack.config.js) and the page itself. Afterwards every same-origin
// GET goes to the network first, so a new build is picked up at once, and the kept copy answers
// when the network is gone. The site makes no external requests, so one visit is enough to keep
// it working offline. Paths are relative to this script, so any sub-path works.
// The build id is stamped in by webpack.config.js: a new deploy changes this file, so the
// browser installs the new worker, which caches the new build under a new name and, once
// active, deletes the caches of earlier builds.
const PREFIX = 'sparse-playground-';
const CACHE = `${PREFIX}__SPARSE_PLAYGROUND_BUILD__`;

async function precache() {
  const cache = await caches.open(CACHE);
  const response = await fetch('precache.json', { cache: 'no-store' });
  const files = response.ok ? await response.json() : [];
  await cache.addAll(['./', ...files]);
}

self.addEventListener('install', (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});
async function dropOldCaches() {
  const names = await caches.keys();
  await Promise.all(names.filter((n) => n.startsWith(PREFIX) && n !== CACHE).map((n) => caches.delete(n)));
}

self.addEventListener('activate', (event) => {
  event.waitUntil(dropOldCaches().then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      })
      .catch(() =>
        caches.match(request, { ignoreSearch: true }).then((hit) => hit || Response.error()),
      ),
  );
});
