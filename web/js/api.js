// REST calls and the session. The session (access + refresh token) lives in
// localStorage so a reload stays signed in; the access token is refreshed a
// minute before it expires, and once more when a call answers 401.

const KEY = 'bowchat.session';
const listeners = new Set();
let session = load();
let refreshing = null;
let timer = null;

function load() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

/** Another tab rotated the refresh token: take its session, or we would reuse a rotated one. */
window.addEventListener('storage', (e) => {
  if (e.key !== KEY) return;
  session = load();
  schedule();
  for (const fn of listeners) fn(session);
});

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

export function currentSession() {
  return session;
}

export function me() {
  return session?.user ?? null;
}

export function onSession(fn) {
  listeners.add(fn);
}

function store(next) {
  session = next;
  if (next) localStorage.setItem(KEY, JSON.stringify(next));
  else localStorage.removeItem(KEY);
  schedule();
  for (const fn of listeners) fn(session);
}

function adopt(body) {
  store({
    accessToken: body.accessToken,
    refreshToken: body.refreshToken,
    expiresAt: Date.now() + body.expiresIn * 1000,
    user: body.user,
  });
  return session;
}

function schedule() {
  clearTimeout(timer);
  if (!session) return;
  const wait = Math.max(5_000, session.expiresAt - Date.now() - 60_000);
  timer = setTimeout(() => refresh().catch(() => {}), wait);
}

/** Rotates the tokens once, however many callers ask at the same time. */
export function refresh() {
  if (!session) return Promise.reject(new ApiError(401, 'AUTH_REQUIRED'));
  if (!refreshing) {
    const token = session.refreshToken;
    refreshing = raw('POST', '/api/auth/refresh', { refreshToken: token })
      .then((body) => adopt(body))
      .catch((e) => {
        // A refused refresh token means the session is over; a network error does not.
        if (e instanceof ApiError && [400, 401, 403].includes(e.status)) store(null);
        throw e;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/** A valid access token, refreshed first when it is (nearly) expired. */
export async function accessToken() {
  if (!session) throw new ApiError(401, 'AUTH_REQUIRED');
  if (session.expiresAt - Date.now() < 30_000) await refresh();
  return session.accessToken;
}

async function raw(method, path, body, token) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, data?.code || `HTTP_${response.status}`, data?.detail || data?.title);
  }
  return data;
}

/** An authenticated call; retried once after a refresh when the token was refused. */
export async function api(method, path, body) {
  try {
    return await raw(method, path, body, await accessToken());
  } catch (e) {
    if (e instanceof ApiError && e.status === 401 && session) {
      await refresh();
      return raw(method, path, body, session.accessToken);
    }
    throw e;
  }
}

export async function login(email, password) {
  return adopt(await raw('POST', '/api/auth/login', { email, password }));
}

export async function register(email, password, displayName) {
  return adopt(await raw('POST', '/api/auth/register', { email, password, displayName: displayName || undefined }));
}

export async function exchangeLoginCode(code) {
  return adopt(await raw('POST', '/api/auth/oauth/exchange', { code }));
}

export function providers() {
  return raw('GET', '/api/auth/providers');
}

/** The seeded accounts of a `--demo` server (none elsewhere). */
export function demoAccounts() {
  return raw('GET', '/api/auth/demo');
}

export async function logout() {
  const token = session?.refreshToken;
  store(null);
  if (token) await raw('POST', '/api/auth/logout', { refreshToken: token }).catch(() => {});
}
