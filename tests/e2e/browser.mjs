// Starts Debian's chromium, headless, with a fresh profile, and watches every request the page,
// its workers and its service worker make: they must talk to nobody but the server under test,
// and only under the path the site is served from (E2E_BASE_URL's, e.g. /lenet/).
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BASE_URL = process.env.E2E_BASE_URL ?? 'http://127.0.0.1:5173/';
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const BASE = new URL(BASE_URL);

/** Whether a request stays on the server under test and under the site's path (the folder's own
 * URL without its final slash counts: a server may redirect through it). */
export function isOwn(url) {
  const u = new URL(url);
  if (['data:', 'blob:'].includes(u.protocol)) return true;
  const under = u.pathname.startsWith(BASE.pathname) || `${u.pathname}/` === BASE.pathname;
  return LOCAL_HOSTS.has(u.hostname) && u.port === BASE.port && under;
}

/** A fresh browser profile and one page; `close()` removes the profile. */
export async function openBrowser({
  viewport = { width: 1280, height: 1000 },
  deviceScaleFactor = 1,
  hasTouch = false,
  locale = undefined,
} = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'lenet-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport,
    deviceScaleFactor,
    hasTouch,
    ...(locale && { locale }),
    acceptDownloads: true,
    timeout: 60_000,
  });
  const foreign = [];
  const problems = [];
  context.on('request', (request) => {
    if (!isOwn(request.url())) foreign.push(request.url());
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30_000);
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
    if (/Content.Security.Policy|Refused to/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return {
    context,
    page,
    foreign,
    problems,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Opens the page (`path` is appended to the base URL) and waits until both the page's network
 * and the training worker are ready. */
export async function openPage(options, path = '') {
  const browser = await openBrowser(options);
  await browser.page.goto(BASE_URL + path);
  await waitUntilReady(browser.page);
  return browser;
}

export async function waitUntilReady(page) {
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  await page.waitForSelector('body[data-worker="ready"]', { timeout: 60_000 });
}

export function assertClean(browser) {
  assert.deepEqual(browser.foreign, [], `the page requested something outside ${BASE_URL}`);
  assert.deepEqual(browser.problems, [], 'the page reported errors');
}
