// What the browser tests share: Debian's chromium launched headless by Playwright
// in a fresh profile, and a bounded wait.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// An event awaited in the page, bounded so a missed one fails rather than hangs.
export const within = (promise, what, ms = 30_000) => {
  let timer;
  const late = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
};

// Runs `body(page, profile)` in a fresh headless chromium (CHROMIUM, default
// /usr/bin/chromium) and exits the process: 0 when it resolved, 1 when it threw
// (with the page's uncaught errors, which `body` collects in `pageErrors`).
export async function inBrowser(tag, body) {
  const profile = mkdtempSync(join(tmpdir(), 'dvrclip-chromium-'));
  // launchPersistentContext is how Playwright takes a fresh --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
    viewport: { width: 1280, height: 900 },
  });
  const pageErrors = [];
  let failed = false;
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await body(page, profile, pageErrors);
  } catch (e) {
    failed = true;
    console.error(`${tag} FAILED:`, e && e.stack ? e.stack : e);
    if (pageErrors.length) console.error('page errors:', pageErrors.join('\n'));
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}
