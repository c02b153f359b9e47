// Offline support. On install, the service worker caches every file of the build (listed in
// precache.json, written by webpack.config.js) and the page itself. Afterwards every same-origin
// GET goes to the network first, so a new build is picked up at once, and the kept copy answers
// when the network is gone. The site makes no external requests, so one visit is enough to keep
// it working offline. Paths are relative to this script, so any sub-path works.
const CACHE = 'sparse-playground-v1';

async function precache() {
  const cache = await caches.open(CACHE);
  const response = await fetch('precache.json', { cache: 'no-store' });
  const files = response.ok ? await response.json() : [];
  await cache.addAll(['./', ...files]);
}

self.addEventListener('install', (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

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
