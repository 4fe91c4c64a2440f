// The clipping console in a real browser: Playwright (playwright-core) driving
// Debian's chromium headless against `dvrclip serve --demo` (started by
// tests/console.rs, which passes its address). Issue 18 "Tests in a real browser":
// a wrong key is refused and the page says so in the API's words; the right key
// signs in; the timeline shows the DVR; in and out are marked by clicks and by keys;
// the clip appears, plays in the page, its MP4 answers 200 and ffprobe reads the
// marked duration within one chunk (2 s); it is deleted; a screenshot is written.
// Every wait is on an event or a condition of the page, never on wall time alone.
//
// Environment: DVRCLIP_URL (http://127.0.0.1:PORT), DVRCLIP_KEY (the demo's `demo`),
// SCREENSHOT (where to write the PNG), CHROMIUM (default /usr/bin/chromium).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { inBrowser, within } from './browser.mjs';

const base = process.env.DVRCLIP_URL;
const key = process.env.DVRCLIP_KEY || 'demo';
const screenshot = process.env.SCREENSHOT || 'console-screenshot.png';
assert.ok(base, 'DVRCLIP_URL is required');
const CHUNK_SECS = 2; // the demo's chunk length: the tolerance of a clip's length

const step = (what) => console.log(`console test: ${what}`);
await inBrowser('console test', run);

async function run(page, profile, pageErrors) {
  page.setDefaultTimeout(30_000);
  const origin = new URL(base).origin;
  const offOrigin = [];
  const cspViolations = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(origin + '/') && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) offOrigin.push(r.url());
  });
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('dialog', (d) => d.accept()); // the delete confirmation

  // --- the page and its policy
  const resp = await page.goto(base + '/console');
  assert.equal(resp.status(), 200);
  const h = resp.headers();
  assert.match(h['content-security-policy'], /default-src 'none'/);
  assert.match(h['content-security-policy'], /media-src 'self' blob:/);
  assert.equal(h['referrer-policy'], 'no-referrer');
  step('page served with its CSP and Referrer-Policy: no-referrer');

  // --- a wrong key is refused, in the API's words
  await page.fill('#key', 'not-the-key');
  await page.click('#signin-button');
  const refused = page.locator('#signin-error');
  await refused.waitFor({ state: 'visible' });
  const refusal = await refused.textContent();
  assert.match(refusal, /401 invalid API key/, refusal);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('dvrclip.apiKey')), null);
  assert.ok(await page.locator('#console').isHidden());
  step(`wrong key refused: "${refusal}"`);

  // --- the right key: the streams list, the demo stream picked
  await page.fill('#key', key);
  await page.click('#signin-button');
  await page.locator('#streams tr[data-stream-id]').first().waitFor();
  const row = await page.locator('#streams tbody tr').first().innerText();
  assert.match(row, /demo/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('dvrclip.apiKey')), key);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  step(`signed in; streams: ${row.replace(/\s+/g, ' ')}`);
  await page.click('#streams button.pick');

  // --- the timeline shows the DVR (the demo ingests 2 s every 2 s: wait for 12 s)
  await page.waitForFunction(() => Number(document.getElementById('timeline').dataset.held) >= 12, null, { timeout: 60_000 });
  const ranges = await page.locator('#timeline .tl-range').count();
  assert.ok(ranges >= 1, 'a range drawn');
  assert.ok(await page.locator('#tl-live').isVisible(), 'the live edge drawn');
  step(`timeline: ${await page.textContent('#dvr-summary')}`);

  // --- the player plays the live window
  await within(page.evaluate(() => new Promise((resolve) => {
    const v = document.getElementById('player');
    if (!v.paused && v.readyState >= 3) return resolve();
    v.addEventListener('playing', () => resolve(), { once: true });
  })), 'playing of the live window');
  await page.keyboard.press('k'); // pause: marks land where the keys put the playhead
  await page.waitForFunction(() => document.getElementById('player').paused);
  step('player playing the live DVR window; paused with K');

  // --- J/K/L: shuttle back until K, then play with L and pause with K
  const t0 = await page.evaluate(() => document.getElementById('player').currentTime);
  await page.keyboard.press('j');
  await page.waitForFunction((t) => document.getElementById('player').currentTime < t - 0.5, t0);
  await page.keyboard.press('k');
  const back = await page.evaluate(() => document.getElementById('player').currentTime);
  const playing = page.evaluate(() => new Promise((r) => document.getElementById('player').addEventListener('playing', r, { once: true })));
  await page.keyboard.press('l');
  await within(playing, 'playing after L');
  await page.keyboard.press('k');
  await page.waitForFunction(() => document.getElementById('player').paused);
  step(`J shuttled back ${(t0 - back).toFixed(2)} s, K stopped, L played, K paused`);

  // --- hovering the timeline shows a frame of the stream at that time
  await page.locator('#timeline').scrollIntoViewIfNeeded();
  const tl = await page.locator('#timeline').boundingBox();
  await page.mouse.move(tl.x + tl.width * 0.5, tl.y + tl.height / 2);
  await page.waitForFunction(() => document.getElementById('tl-hover').dataset.drawn);
  const lit = await page.evaluate(() => {
    const c = document.getElementById('tl-thumb');
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i] + px[i + 1] + px[i + 2] > 60) n++;
    return n / (px.length / 4);
  });
  assert.ok(lit > 0.2, `the hover thumbnail is drawn (${(lit * 100).toFixed(0)}% lit)`);
  step(`hover thumbnail at ${await page.textContent('#tl-hover-time')}: ${(lit * 100).toFixed(0)}% of its pixels lit`);

  const seekOnTimeline = async (fraction) => {
    await page.locator('#timeline').scrollIntoViewIfNeeded();
    const box = await page.locator('#timeline').boundingBox();
    const seeked = page.evaluate(() => new Promise((r) => document.getElementById('player').addEventListener('seeked', r, { once: true })));
    await page.mouse.click(box.x + box.width * fraction, box.y + box.height / 2);
    await within(seeked, 'seek from a timeline click');
  };
  const stepSeconds = async (n) => {
    for (let i = 0; i < n; i++) {
      const seeked = page.evaluate(() => new Promise((r) => document.getElementById('player').addEventListener('seeked', r, { once: true })));
      await page.keyboard.press('ArrowRight');
      await within(seeked, 'seek from ArrowRight');
    }
  };
  const selection = () => page.evaluate(() => Number(document.getElementById('tl-selection').dataset.duration));

  // --- marks by clicks: the buttons
  await seekOnTimeline(0.15);
  await page.click('#mark-in');
  await stepSeconds(3);
  await page.click('#mark-out');
  const byClicks = await selection();
  assert.ok(Math.abs(byClicks - 3) < 0.05, `selection by clicks ${byClicks} s, wanted 3`);
  step(`marked by clicks: ${await page.textContent('#sel-duration')}`);

  // --- marks by keys: I, arrows, O; then C clips
  await seekOnTimeline(0.3);
  await page.locator('#timeline').blur();
  await page.keyboard.press('i');
  await stepSeconds(5);
  await page.keyboard.press('o');
  const marked = await selection();
  assert.ok(Math.abs(marked - 5) < 0.05, `selection by keys ${marked} s, wanted 5`);
  assert.ok(await page.locator('#tl-selection').isVisible());
  step(`marked by keys: ${await page.textContent('#sel-duration')}`);

  const before = await page.locator('#clips tr[data-clip-id]').count();
  await page.keyboard.press('c');
  const clipRow = page.locator('#clips tr[data-clip-id][data-state="complete"]').first();
  await clipRow.waitFor();
  assert.equal(await page.locator('#clips tr[data-clip-id]').count(), before + 1);
  const clipId = await clipRow.getAttribute('data-clip-id');
  const mp4 = await clipRow.getAttribute('data-mp4');
  step(`clip ${clipId} appears: ${(await clipRow.innerText()).replace(/\s+/g, ' ')}`);

  // --- it plays in the page: the preview's currentTime advances
  await clipRow.locator('button', { hasText: 'Preview' }).click();
  const played = await within(page.evaluate(() => new Promise((resolve, reject) => {
    const v = document.getElementById('preview');
    const from = v.currentTime;
    const on = () => {
      if (v.currentTime >= from + 1) {
        v.removeEventListener('timeupdate', on);
        resolve(v.currentTime);
      }
    };
    v.addEventListener('timeupdate', on);
    v.addEventListener('error', () => reject(new Error('preview error ' + (v.error && v.error.message))), { once: true });
  })), 'preview playing');
  step(`preview plays in the page: currentTime reached ${played.toFixed(2)} s`);
  await page.screenshot({ path: screenshot, fullPage: true });
  step(`screenshot written to ${screenshot}`);

  // --- its MP4 link answers 200 and ffprobe reads the marked duration ±1 chunk
  const link = new URL(new URL(mp4).pathname, origin).toString();
  const got = await fetch(link);
  assert.equal(got.status, 200, `GET ${link}`);
  const file = join(profile, 'clip.mp4');
  writeFileSync(file, Buffer.from(await got.arrayBuffer()));
  const probed = Number(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', file]).toString().trim());
  assert.ok(Math.abs(probed - marked) <= CHUNK_SECS, `ffprobe ${probed} s, marked ${marked} s`);
  step(`MP4 200, ffprobe duration ${probed} s for a ${marked} s selection`);

  // --- delete it: the row goes, the link answers 404
  await clipRow.locator('button', { hasText: 'Delete' }).click();
  await page.locator(`#clips tr[data-clip-id="${clipId}"]`).waitFor({ state: 'detached' });
  assert.equal((await fetch(link)).status, 404);
  step('deleted: gone from the list, its MP4 answers 404');

  // --- "Clip the last N s" in one key (R): a 4 s clip ending at the live edge
  await page.fill('#last-secs', '4');
  await page.locator('#last-secs').blur();
  const rows = await page.locator('#clips tr[data-clip-id]').count();
  await page.keyboard.press('r');
  await page.waitForFunction((n) => document.querySelectorAll('#clips tr[data-clip-id]').length === n + 1, rows);
  const last = page.locator('#clips tbody tr[data-clip-id]').first();
  const lastText = (await last.innerText()).replace(/\s+/g, ' ');
  assert.match(lastText, /of 4 s/, lastText);
  step(`clip the last 4 s by R: ${lastText}`);
  await last.locator('button', { hasText: 'Delete' }).click();
  await page.waitForFunction((n) => document.querySelectorAll('#clips tr[data-clip-id]').length === n, rows);

  // --- "Record the next N s" (Shift+R) with "keep as VOD": recording, then complete
  await page.fill('#last-secs', '4');
  await page.check('#opt-vod');
  await page.locator('#opt-vod').blur();
  await page.keyboard.press('Shift+R');
  const rec = page.locator('#clips tbody tr[data-clip-id]').first();
  await page.locator('#clips tr[data-state="recording"] progress').first().waitFor();
  assert.equal(await rec.locator('a', { hasText: 'Download' }).getAttribute('aria-disabled'), 'true');
  step(`record the next 4 s by Shift+R: ${(await rec.innerText()).replace(/\s+/g, ' ')}`);
  // A recording clip previews through its growing HLS playlist (its MP4 is a 425).
  await rec.locator('button', { hasText: 'Preview' }).click();
  await within(page.evaluate(() => new Promise((resolve) => {
    const v = document.getElementById('preview');
    const on = () => v.currentTime > 0.5 && (v.removeEventListener('timeupdate', on), resolve());
    v.addEventListener('timeupdate', on);
  })), 'the recording clip playing');
  step('the recording clip plays in the page through its HLS playlist');
  await page.locator('#clips tr[data-state="complete"]').first().waitFor({ timeout: 30_000 });
  await page.waitForFunction(() => /VOD #\d+ ready/.test(document.querySelector('#clips tbody tr').innerText), null, { timeout: 30_000 });
  step(`completed: ${(await rec.innerText()).replace(/\s+/g, ' ')}`);
  await rec.locator('button', { hasText: 'Delete' }).click();
  await page.waitForFunction((n) => document.querySelectorAll('#clips tr[data-clip-id]').length === n, rows);
  await page.uncheck('#opt-vod');

  // --- an API refusal is shown in the API's words: longer than the DVR window
  await page.fill('#last-secs', '5000');
  await page.locator('#last-secs').blur();
  await page.keyboard.press('r');
  await page.waitForFunction(() => /^Clip refused: 400 /.test(document.getElementById('error').textContent));
  step(`refusal shown: "${await page.textContent('#error')}"`);

  // --- a new stream, its push URL shown to copy
  await page.click('#new-stream-box summary');
  await page.fill('#new-name', 'cam2');
  await page.click('#new-stream button[type=submit]');
  await page.locator('#new-result code').first().waitFor();
  const push = (await page.locator('#new-result code').allTextContents()).join(' ');
  assert.match(push, /\/ingest\/[0-9a-f]+(\s|$)/, push);
  await page.locator('#streams tr[data-stream-id]').nth(1).waitFor();
  step(`stream created, push URL shown: ${push}`);

  // --- zoom: the wheel narrows the timeline, + halves it (10 s at least), 0 shows it all
  const shown = () => page.evaluate(() => {
    const d = document.getElementById('timeline').dataset;
    return { span: Number(d.end) - Number(d.start), zoomed: d.zoomed };
  });
  const full = await shown();
  await page.locator('#timeline').scrollIntoViewIfNeeded();
  const b = await page.locator('#timeline').boundingBox();
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2);
  await page.mouse.wheel(0, -100);
  await page.waitForFunction((w) => {
    const d = document.getElementById('timeline').dataset;
    return d.zoomed === 'yes' && Number(d.end) - Number(d.start) < w;
  }, full.span);
  const wheeled = await shown();
  await page.keyboard.press('+');
  const plus = await shown();
  const wanted = Math.max(wheeled.span / 2, 10);
  assert.ok(Math.abs(plus.span - wanted) < 0.5, `+: ${plus.span} s shown, wanted ${wanted}`);
  await page.keyboard.press('0');
  assert.equal((await shown()).zoomed, 'no');
  step(`zoom: ${full.span.toFixed(1)} s shown, wheel → ${wheeled.span.toFixed(1)} s, + → ${plus.span.toFixed(1)} s, 0 → all`);

  assert.deepEqual(offOrigin, [], 'no request leaves the origin');
  assert.deepEqual(cspViolations, [], 'no CSP violation');
  assert.deepEqual(pageErrors, [], 'no uncaught page error');
  const requested = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
  assert.ok(requested.every((u) => !u.includes(key) || key.length < 4), 'the key is in no URL');
  step(`no third-party request, no CSP violation, no page error (${requested.length} resources)`);
  step('PASSED');
}
