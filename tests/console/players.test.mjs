// Clips as a player plays them: for each clip, its HLS master playlist in hls.js
// (the console's own copy, in a page of the server's origin so its CSP applies) and
// its MP4 in a plain <video>, in Debian's chromium headless through Playwright.
// Each must start, advance 1.5 s of media, show the expected picture size, and
// raise no fatal hls.js error. Started by tests/players.rs.
//
// Environment: DVRCLIP_URL (http://127.0.0.1:PORT); CLIPS, space-separated
// `label,hls master URL,MP4 URL,width,height`; CHROMIUM (default /usr/bin/chromium).
import assert from 'node:assert/strict';
import { inBrowser, within } from './browser.mjs';

const base = process.env.DVRCLIP_URL;
const clips = (process.env.CLIPS || '').split(' ').filter(Boolean).map((c) => {
  const [label, hls, mp4, width, height] = c.split(',');
  return { label, hls, mp4, width: Number(width), height: Number(height) };
});
assert.ok(base && clips.length, 'DVRCLIP_URL and CLIPS are required');
const step = (what) => console.log(`players test: ${what}`);

await inBrowser('players test', async (page, _profile, pageErrors) => {
  page.setDefaultTimeout(30_000);
  // A page of the server's origin that has loaded hls.js.
  await page.goto(base + '/console');
  await page.waitForFunction(() => typeof window.Hls === 'function' && window.Hls.isSupported());
  for (const clip of clips) {
    const hls = await within(page.evaluate((url) => new Promise((resolve, reject) => {
      const v = document.createElement('video');
      v.muted = true;
      document.body.appendChild(v);
      const player = new window.Hls();
      player.on(window.Hls.Events.ERROR, (_, d) => d.fatal && reject(new Error(`hls.js fatal ${d.type} ${d.details}`)));
      v.addEventListener('timeupdate', () => {
        if (v.currentTime >= 1.5) {
          const got = { time: v.currentTime, width: v.videoWidth, height: v.videoHeight, levels: player.levels.length };
          player.destroy();
          v.remove();
          resolve(got);
        }
      });
      player.loadSource(url);
      player.attachMedia(v);
      v.play().catch(reject);
    }), clip.hls), `${clip.label} playing in hls.js`);
    assert.equal(`${hls.width}x${hls.height}`, `${clip.width}x${clip.height}`, `${clip.label} picture in hls.js`);
    step(`${clip.label}: HLS plays in hls.js (${hls.levels} level(s), ${hls.width}x${hls.height}, reached ${hls.time.toFixed(2)} s)`);

    const mp4 = await within(page.evaluate((url) => new Promise((resolve, reject) => {
      const v = document.createElement('video');
      v.muted = true;
      document.body.appendChild(v);
      v.addEventListener('error', () => reject(new Error(`<video> error ${v.error && v.error.message}`)));
      v.addEventListener('timeupdate', () => {
        if (v.currentTime >= 1.5) {
          const got = { time: v.currentTime, width: v.videoWidth, height: v.videoHeight, duration: v.duration };
          v.remove();
          resolve(got);
        }
      });
      v.src = url;
      v.play().catch(reject);
    }), clip.mp4), `${clip.label} MP4 playing`);
    assert.equal(`${mp4.width}x${mp4.height}`, `${clip.width}x${clip.height}`, `${clip.label} picture of the MP4`);
    step(`${clip.label}: MP4 plays in <video> (${mp4.width}x${mp4.height}, ${mp4.duration.toFixed(2)} s long, reached ${mp4.time.toFixed(2)} s)`);
  }
  assert.deepEqual(pageErrors, [], 'no uncaught page error');
  step('PASSED');
});
