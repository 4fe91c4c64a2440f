// The dvrclip clipping console: sign in with the API key, pick a stream, scrub its
// DVR window, mark in and out, cut clips, and manage them. It speaks only the API of
// ref/api.md, from this origin; the key lives in sessionStorage and travels only in
// the Authorization header. Wall time is Unix seconds (numbers named *Utc or wall);
// media time is the <video>'s seconds. No build step: plain ES2020.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = 'dvrclip.apiKey';
  const PAGE_SIZE = 25; // ref/api.md "Paging"

  const st = {
    key: null,
    streams: [],
    stream: null, // the selected Stream object
    dvr: null, // the reference rendition of GET /dvr
    hls: null,
    markIn: null, // Unix seconds
    markOut: null,
    clips: [],
    videos: new Map(), // video_id → Video object, for VOD status
    previewHls: null,
    thumbs: null, // the hover thumbnails' own player: { hls, video, busy, next }
    shuttle: null, // the reverse shuttle's interval
    reverse: 0, // its speed, seconds per second
    view: null, // the timeline's zoom: { span, end } in wall seconds, null for all
    timers: [],
  };

  // ---- the API -------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, field) {
      super(message);
      this.status = status;
      this.field = field;
    }
  }

  // A path of this server, relative to the page's base so a console mounted under a
  // prefix still works.
  const here = (path) => new URL(path, document.baseURI).toString();

  // A public link (clip, live, VOD) as a URL of this origin: the links carry the
  // server's --public-url, which may name another host than the one the page came
  // from, and the page's CSP allows only its own origin.
  function local(link) {
    const u = new URL(link, document.baseURI);
    const m = u.pathname.match(/\/(live|rec|vod)\/.*$/);
    return m ? here(m[0].slice(1) + u.search) : u.toString();
  }

  async function api(method, path, body) {
    const headers = { Authorization: 'APIKey ' + st.key };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(here(path), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new ApiError(0, 'no answer from the server (' + e.message + ')');
    }
    const text = resp.status === 204 ? '' : await resp.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = null;
    }
    if (!resp.ok) {
      const words = json && typeof json.error === 'string' ? json.error : text || resp.statusText;
      const err = new ApiError(resp.status, words, json && json.field);
      if (resp.status === 401 && st.stream) signOut('The server refused the key: ' + describe(err));
      throw err;
    }
    return json;
  }

  // An error as the API worded it: status, message, field.
  function describe(e) {
    if (e instanceof ApiError) {
      const status = e.status ? e.status + ' ' : '';
      return status + e.message + (e.field ? ' (field: ' + e.field + ')' : '');
    }
    return String((e && e.message) || e);
  }

  function say(text, kind) {
    const el = $('error');
    el.textContent = text;
    el.className = kind || 'error';
    el.hidden = !text;
  }

  // ---- formatting ----------------------------------------------------------------

  const pad = (n, w = 2) => String(Math.floor(n)).padStart(w, '0');
  function clock(wall, ms) {
    if (wall == null) return '–';
    const d = new Date(wall * 1000);
    const s = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    return ms ? s + '.' + pad(d.getMilliseconds() / 100, 1) : s;
  }
  function span(secs) {
    if (secs == null || !isFinite(secs)) return '–';
    if (secs < 60) return secs.toFixed(1) + ' s';
    const parts = [[Math.floor(secs / 3600), 'h'], [Math.floor((secs % 3600) / 60), 'min'], [Math.floor(secs % 60), 's']];
    return parts.filter(([n]) => n).map(([n, u]) => n + ' ' + u).join(' ');
  }
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    for (const c of children) e.append(c);
    return e;
  }

  // ---- sign-in -------------------------------------------------------------------

  async function signIn(key) {
    st.key = key;
    try {
      st.streams = await listAll('streaming/streams');
    } catch (e) {
      st.key = null;
      sessionStorage.removeItem(KEY_STORE);
      const err = $('signin-error');
      err.textContent = 'Refused: ' + describe(e);
      err.hidden = false;
      return false;
    }
    sessionStorage.setItem(KEY_STORE, key);
    $('signin-error').hidden = true;
    $('signin').hidden = true;
    $('console').hidden = false;
    $('who').hidden = false;
    renderStreams();
    if (st.streams.length === 1) selectStream(st.streams[0].id);
    return true;
  }

  function signOut(why) {
    sessionStorage.removeItem(KEY_STORE);
    st.key = null;
    leaveStream();
    $('console').hidden = true;
    $('who').hidden = true;
    $('signin').hidden = false;
    $('key').value = '';
    const err = $('signin-error');
    err.textContent = why || '';
    err.hidden = !why;
  }

  // Every page of a list (ref/api.md "Paging": a short page is the last).
  async function listAll(path) {
    const all = [];
    for (let page = 1; page < 1000; page++) {
      const items = await api('GET', path + '?page=' + page);
      all.push(...items);
      if (items.length < PAGE_SIZE) break;
    }
    return all;
  }

  // ---- streams -------------------------------------------------------------------

  function renderStreams() {
    const body = $('streams').tBodies[0];
    body.replaceChildren();
    for (const s of st.streams) {
      const pick = el('button', { type: 'button', className: 'pick', textContent: s.name || 'stream ' + s.id });
      pick.dataset.streamId = s.id;
      pick.addEventListener('click', () => selectStream(s.id));
      const state = !s.active ? 'inactive' : s.live ? '● live' : 'idle';
      const row = el(
        'tr',
        { className: st.stream && st.stream.id === s.id ? 'selected' : '' },
        el('td', {}, pick, el('small', { textContent: ' #' + s.id })),
        el('td', { className: s.live ? 'live' : '', textContent: state }),
        el('td', { textContent: s.dvr_enabled ? span(s.dvr_duration) : 'off' }),
        el('td', { textContent: (s.transcoded_qualities || []).join(', ') || '–' }),
      );
      row.dataset.streamId = s.id;
      body.append(row);
    }
    if (!st.streams.length) {
      body.append(el('tr', {}, el('td', { colSpan: 4, textContent: 'No streams yet.' })));
    }
  }

  async function refreshStreams() {
    try {
      st.streams = await listAll('streaming/streams');
      renderStreams();
    } catch (e) {
      say('Streams: ' + describe(e));
    }
  }

  // POST /streaming/streams: the new stream's push URL is shown to copy.
  async function createStream(ev) {
    ev.preventDefault();
    const name = $('new-name').value.trim();
    const body = { name };
    const dvr = Number($('new-dvr').value);
    if (dvr) body.dvr_duration = dvr;
    const out = $('new-result');
    try {
      const s = await api('POST', 'streaming/streams', body);
      // Every push URL the server gives (`push_url`, and each door's `push_url_*`).
      const urls = Object.keys(s).filter((k) => k.startsWith('push_url') && s[k]);
      out.replaceChildren('Stream #' + s.id + ' created. Push to:');
      for (const k of urls) {
        const line = el('span', { className: 'push' }, el('small', { textContent: k + ' ' }), el('code', { textContent: s[k] }), ' ', copyButton('Copy', s[k]));
        line.dataset.field = k;
        out.append(line);
      }
      out.className = 'info';
      $('new-name').value = '';
      await refreshStreams();
    } catch (e) {
      out.textContent = 'Refused: ' + describe(e);
      out.className = 'error';
    }
    out.hidden = false;
  }

  function leaveStream() {
    for (const t of st.timers) clearInterval(t);
    st.timers = [];
    stopShuttle();
    if (st.hls) st.hls.destroy();
    st.hls = null;
    stopThumbs();
    closePreview();
    st.stream = null;
    st.dvr = null;
    st.markIn = st.markOut = null;
    st.view = null;
    st.clips = [];
    $('work').hidden = true;
  }

  async function selectStream(id) {
    leaveStream();
    const s = st.streams.find((x) => x.id === id);
    if (!s) return;
    st.stream = s;
    renderStreams();
    $('work').hidden = false;
    $('stream-title').textContent = (s.name || 'stream') + ' · #' + s.id;
    say('');
    renderMarks();
    startPlayer(s);
    startThumbs(s);
    await Promise.all([refreshDvr(), refreshClips()]);
    st.timers.push(setInterval(refreshDvr, 2000));
    st.timers.push(setInterval(refreshClips, 3000));
    st.timers.push(setInterval(tick, 1000));
  }

  // ---- the player over the live DVR window ----------------------------------------

  function startPlayer(s) {
    const video = $('player');
    const src = local(s.hls_cmaf_url);
    if (window.Hls && window.Hls.isSupported()) {
      // The whole DVR window stays seekable; start near the live edge.
      const hls = new window.Hls({ backBufferLength: 90, liveDurationInfinity: true });
      hls.on(window.Hls.Events.ERROR, (_, data) => {
        if (!data.fatal) return;
        if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR) {
          say('Player: ' + data.details + ' (the live playlist did not load; retrying)');
          setTimeout(() => st.hls === hls && hls.startLoad(), 2000);
        } else if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
        } else {
          say('Player: ' + data.details);
        }
      });
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
      hls.on(window.Hls.Events.LEVEL_UPDATED, drawPlayhead);
      hls.loadSource(src);
      hls.attachMedia(video);
      st.hls = hls;
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = src; // Safari: native HLS, wall time from getStartDate()
      video.play().catch(() => {});
    } else {
      say('This browser has no Media Source Extensions: the live window cannot play here.');
    }
  }

  // The fragments of the level playing, in media time with their wall time.
  function fragments(h = st.hls) {
    if (!h || !h.levels || !h.levels.length) return [];
    const i = h.currentLevel >= 0 ? h.currentLevel : Math.max(h.loadLevel, 0);
    const level = h.levels[i] || h.levels[0];
    return (level && level.details && level.details.fragments) || [];
  }

  // The last index whose key(frag) <= x, or -1.
  function lastAtOrBefore(frags, x, key) {
    let lo = 0;
    let hi = frags.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (key(frags[mid]) <= x) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  // Media seconds → Unix seconds, from the fragments' EXT-X-PROGRAM-DATE-TIME.
  function wallAt(t) {
    const frags = fragments();
    if (!frags.length) {
      const v = $('player');
      const d = v.getStartDate && v.getStartDate();
      return d && !isNaN(d.getTime()) ? d.getTime() / 1000 + t : null;
    }
    const i = Math.max(lastAtOrBefore(frags, t, (f) => f.start), 0);
    const f = frags[i];
    if (f.programDateTime == null) return null;
    return f.programDateTime / 1000 + (t - f.start);
  }

  // Unix seconds → media seconds; a wall time in a gap lands on the next chunk.
  function mediaAt(wall, h = st.hls) {
    const frags = fragments(h).filter((f) => f.programDateTime != null);
    if (!frags.length) {
      if (h !== st.hls) return null;
      const d = $('player').getStartDate && $('player').getStartDate();
      return d && !isNaN(d.getTime()) ? wall - d.getTime() / 1000 : null;
    }
    const i = lastAtOrBefore(frags, wall * 1000, (f) => f.programDateTime);
    if (i < 0) return frags[0].start;
    const f = frags[i];
    const into = wall - f.programDateTime / 1000;
    if (into <= f.duration) return f.start + into;
    return i + 1 < frags.length ? frags[i + 1].start : f.start + f.duration;
  }

  const playheadWall = () => wallAt($('player').currentTime);

  function seekMedia(t) {
    const v = $('player');
    const r = v.seekable;
    if (r.length) t = Math.min(Math.max(t, r.start(0)), r.end(r.length - 1));
    v.currentTime = t;
  }

  function seekWall(wall) {
    const t = mediaAt(wall);
    if (t == null) return say('The player has not loaded the DVR window yet.');
    seekMedia(t);
  }

  function frameSecs() {
    const h = st.hls;
    const rate = h && h.levels && h.levels[0] && h.levels[0].frameRate;
    return 1 / (rate || 30);
  }

  // ---- thumbnails: a second, hidden player on the lowest rendition -----------------

  // Hovering the timeline seeks this player, not the editor's: each thumbnail is a
  // frame of the stream itself, drawn into a canvas (no image URL for the CSP to allow).
  function startThumbs(s) {
    if (!(window.Hls && window.Hls.isSupported())) return;
    const video = document.createElement('video');
    video.muted = true;
    const hls = new window.Hls({ maxBufferLength: 2, maxMaxBufferLength: 4, backBufferLength: 0, capLevelToPlayerSize: false });
    const t = { hls, video, busy: false, next: null };
    // A hover before the playlist loaded is kept and drawn once it has.
    hls.on(window.Hls.Events.LEVEL_UPDATED, () => {
      if (!t.busy && t.next != null) {
        const w = t.next;
        t.next = null;
        thumbAt(w);
      }
    });
    hls.on(window.Hls.Events.MANIFEST_PARSED, (_, data) => {
      let low = 0;
      data.levels.forEach((l, i) => (l.bitrate < data.levels[low].bitrate ? (low = i) : 0));
      hls.currentLevel = low;
    });
    video.addEventListener('seeked', () => {
      const c = $('tl-thumb');
      c.getContext('2d').drawImage(video, 0, 0, c.width, c.height);
      $('tl-hover').dataset.drawn = String(t.wall);
      t.busy = false;
      if (t.next != null) {
        const w = t.next;
        t.next = null;
        thumbAt(w);
      }
    });
    hls.loadSource(local(s.hls_cmaf_url));
    hls.attachMedia(video);
    st.thumbs = t;
  }

  function thumbAt(wall) {
    const t = st.thumbs;
    if (!t) return;
    // One seek at a time; a seek with no answer for 3 s (no data there) is given up.
    if (t.busy && performance.now() - t.since < 3000) {
      t.next = wall;
      return;
    }
    const m = mediaAt(wall, t.hls);
    if (m == null) {
      t.next = wall;
      return;
    }
    t.busy = true;
    t.since = performance.now();
    t.wall = wall;
    t.video.currentTime = m;
  }

  function stopThumbs() {
    if (st.thumbs) st.thumbs.hls.destroy();
    st.thumbs = null;
  }

  function hover(ev) {
    const x = extent();
    const tip = $('tl-hover');
    if (!x) return (tip.hidden = true);
    const box = $('timeline').getBoundingClientRect();
    const f = Math.min(Math.max((ev.clientX - box.left) / box.width, 0), 1);
    const wall = x.start + f * (x.end - x.start);
    tip.hidden = false;
    tip.style.left = Math.min(Math.max(f * 100, 8), 92) + '%';
    $('tl-hover-time').textContent = clock(wall, true);
    thumbAt(wall);
  }

  // ---- the timeline -------------------------------------------------------------

  async function refreshDvr() {
    const s = st.stream;
    if (!s) return;
    try {
      const dvr = await api('GET', 'streaming/streams/' + s.id + '/dvr');
      if (st.stream !== s) return;
      // The reference rendition (the first: the highest video) is what clips cut by.
      st.dvr = (dvr.renditions || [])[0] || null;
      drawTimeline();
    } catch (e) {
      if (st.stream === s) say('DVR: ' + describe(e));
    }
  }

  // The timeline's extent in wall time: the DVR's first chunk to the live edge.
  function held() {
    const r = st.dvr && st.dvr.ranges;
    if (!r || !r.length) return null;
    const start = r[0].start;
    const end = Math.max(r[r.length - 1].end, start + 1);
    return { start, end };
  }

  // What the timeline shows: all of it, or a zoomed part (st.view: its span, and its
  // end, or null while it follows the live edge).
  function extent() {
    const all = held();
    if (!all || !st.view) return all;
    const width = Math.min(st.view.span, all.end - all.start);
    const end = st.view.end == null ? all.end : Math.min(Math.max(st.view.end, all.start + width), all.end);
    return { start: end - width, end };
  }

  // Zooms the timeline by `factor` keeping `aroundWall` where it is; 10 s at least.
  function zoom(factor, aroundWall) {
    const all = held();
    const x = extent();
    if (!all) return;
    const width = Math.max((x.end - x.start) * factor, 10);
    if (width >= all.end - all.start) st.view = null;
    else {
      const around = aroundWall == null ? (x.start + x.end) / 2 : aroundWall;
      const end = around + (1 - (around - x.start) / (x.end - x.start)) * width;
      st.view = { span: width, end: end >= all.end ? null : end };
    }
    drawTimeline();
  }
  const pct = (wall, x) => (100 * (wall - x.start)) / (x.end - x.start);

  function drawTimeline() {
    const tl = $('timeline');
    for (const old of tl.querySelectorAll('.tl-range, .tl-gap, .tl-disc')) old.remove();
    const x = extent();
    const sum = $('dvr-summary');
    const axis = $('tl-axis');
    axis.replaceChildren();
    if (!x) {
      delete tl.dataset.held;
      sum.textContent = st.stream && !st.stream.dvr_enabled ? 'DVR disabled for this stream.' : 'The DVR holds nothing yet.';
      $('tl-live').hidden = true;
      return drawMarks();
    }
    const d = st.dvr;
    let heldSecs = 0;
    for (const r of d.ranges) {
      heldSecs += r.end - r.start;
      const div = el('div', { className: 'tl-range', title: clock(r.start) + '–' + clock(r.end) + ' · ' + r.chunks + ' chunks · discontinuity ' + r.discontinuity });
      div.style.left = pct(r.start, x) + '%';
      div.style.width = Math.max(pct(r.end, x) - pct(r.start, x), 0.2) + '%';
      tl.append(div);
    }
    for (const g of d.gaps || []) {
      const div = el('div', { className: 'tl-gap', title: 'gap ' + clock(g.start) + '–' + clock(g.end) });
      div.style.left = pct(g.start, x) + '%';
      div.style.width = Math.max(pct(g.end, x) - pct(g.start, x), 0.2) + '%';
      tl.append(div);
    }
    for (const c of (d.discontinuities || []).slice(1)) {
      const div = el('div', { className: 'tl-disc', title: 'encoder restart (discontinuity ' + c.discontinuity + ') at ' + clock(c.start, true) });
      div.style.left = pct(c.start, x) + '%';
      tl.append(div);
    }
    const live = $('tl-live');
    const all = held();
    live.hidden = !(st.stream && st.stream.live && x.end >= all.end);
    live.style.left = '100%';
    tl.dataset.start = x.start;
    tl.dataset.end = x.end;
    tl.dataset.zoomed = st.view ? 'yes' : 'no';
    tl.dataset.held = heldSecs.toFixed(3);
    for (let i = 0; i <= 4; i++) {
      const w = x.start + ((x.end - x.start) * i) / 4;
      const tick = el('span', { textContent: clock(w) });
      tick.style.left = (100 * i) / 4 + '%';
      axis.append(tick);
    }
    sum.textContent =
      d.name + ': ' + span(heldSecs) + ' held of ' + span(st.stream.dvr_duration) + ' · ' + d.chunks + ' chunks · ' +
      (d.gaps || []).length + ' gaps · ' + Math.max((d.discontinuities || []).length - 1, 0) +
      ' encoder restarts · live edge ' + clock(x.end) + ' (local time)';
    drawPlayhead();
    drawMarks();
  }

  function drawPlayhead() {
    const x = extent();
    const head = $('tl-playhead');
    const wall = playheadWall();
    $('clock').textContent = clock(wall, true);
    if (!x || wall == null) {
      head.hidden = true;
      return;
    }
    head.hidden = false;
    head.style.left = Math.min(Math.max(pct(wall, x), 0), 100) + '%';
  }

  // ---- marks and clips ------------------------------------------------------------

  function mark(which) {
    const wall = playheadWall();
    if (wall == null) return say('The player has not loaded the DVR window yet: nothing to mark.');
    say('');
    if (which === 'in') {
      st.markIn = wall;
      if (st.markOut != null && st.markOut <= wall) st.markOut = null;
    } else {
      if (st.markIn != null && wall <= st.markIn) return say('Mark out must come after mark in (' + clock(st.markIn, true) + ').');
      st.markOut = wall;
    }
    renderMarks();
  }

  // The request a selection makes: the API takes whole seconds.
  function request(inWall, outWall) {
    const start = Math.floor(inWall);
    return { start, duration: Math.max(Math.ceil(outWall - start), 1) };
  }

  function renderMarks() {
    $('in-time').textContent = 'in: ' + clock(st.markIn, true);
    $('out-time').textContent = 'out: ' + clock(st.markOut, true);
    const both = st.markIn != null && st.markOut != null;
    const sel = both ? st.markOut - st.markIn : null;
    if (both) {
      const r = request(st.markIn, st.markOut);
      $('sel-duration').textContent = 'selection ' + span(sel) + ' → clip ' + clock(r.start) + ' + ' + r.duration + ' s';
    } else $('sel-duration').textContent = '';
    $('clip').disabled = !both;
    drawMarks();
  }

  function drawMarks() {
    const x = extent();
    const sel = $('tl-selection');
    if (!x || st.markIn == null) {
      sel.hidden = true;
      delete sel.dataset.duration;
      return;
    }
    const end = st.markOut != null ? st.markOut : st.markIn;
    sel.hidden = false;
    sel.classList.toggle('open', st.markOut == null);
    sel.style.left = pct(st.markIn, x) + '%';
    sel.style.width = Math.max(pct(end, x) - pct(st.markIn, x), 0.3) + '%';
    if (st.markOut != null) {
      sel.dataset.duration = (st.markOut - st.markIn).toFixed(3);
      $('tl-selection-label').textContent = span(st.markOut - st.markIn);
    } else {
      delete sel.dataset.duration;
      $('tl-selection-label').textContent = 'in';
    }
  }

  function options(end) {
    const body = {};
    if ($('opt-precise').checked) body.precise = true;
    if ($('opt-vod').checked) body.vod_required = true;
    const after = Number($('opt-expiration').value);
    // ref/api.md: expiration lies 1 min–4 h after max(end, now).
    if (after) body.expiration = Math.ceil(Math.max(end, Date.now() / 1000)) + after;
    return body;
  }

  // `start` null: "the next `duration` s, from now" (the clip records).
  async function createClip(start, duration) {
    const s = st.stream;
    const body = Object.assign(start == null ? { duration } : { start, duration }, options((start == null ? Date.now() / 1000 : start) + duration));
    const button = $('clip');
    button.disabled = true;
    try {
      const clip = await api('PUT', 'streaming/streams/' + s.id + '/clip_recording', body);
      const from = start == null ? 'from now' : clock(start);
      say('Clip ' + clip.id.slice(0, 8) + '… created: ' + from + ' + ' + duration + ' s (' + clip.state + ').', 'info');
      await refreshClips();
      return clip;
    } catch (e) {
      say('Clip refused: ' + describe(e));
      return null;
    } finally {
      button.disabled = st.markIn == null || st.markOut == null;
    }
  }

  function clipSelection() {
    if (st.markIn == null || st.markOut == null) return say('Mark in and mark out first (I, O).');
    const r = request(st.markIn, st.markOut);
    return createClip(r.start, r.duration);
  }

  function lastSecs() {
    const n = Math.floor(Number($('last-secs').value));
    if (!(n >= 1)) say('N must be a whole number of seconds from 1.');
    return n >= 1 ? n : null;
  }

  function recordNext() {
    const n = lastSecs();
    return n && createClip(null, n);
  }

  async function clipLast() {
    const n = Math.floor(Number($('last-secs').value));
    if (!(n >= 1)) return say('Clip the last N s: N must be a whole number of seconds from 1.');
    await refreshDvr();
    const x = held();
    if (!x) return say('The DVR holds nothing yet: there is no "last ' + n + ' s" to clip.');
    // The live edge is the last chunk the DVR holds: the clip is complete at once.
    return createClip(Math.floor(x.end - n), n);
  }

  // ---- the clips list ------------------------------------------------------------

  async function refreshClips() {
    const s = st.stream;
    if (!s) return;
    try {
      const clips = await listAll('streaming/streams/' + s.id + '/clip_recording');
      if (st.stream !== s) return;
      st.clips = clips;
      for (const c of clips) {
        if (c.video_id == null) continue;
        const v = st.videos.get(c.video_id);
        if (v && v.status !== 'pending') continue;
        api('GET', 'streaming/videos/' + c.video_id)
          .then((video) => {
            st.videos.set(c.video_id, video);
            renderClips();
          })
          .catch(() => {});
      }
      renderClips();
    } catch (e) {
      if (st.stream === s) say('Clips: ' + describe(e));
    }
  }

  function copyButton(label, link) {
    const b = el('button', { type: 'button', textContent: label, title: link });
    b.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(link);
        b.textContent = 'copied';
      } catch (_) {
        // No clipboard (an insecure origin): show the link to copy by hand.
        window.prompt('Copy the link:', link);
      }
      setTimeout(() => (b.textContent = label), 1500);
    });
    return b;
  }

  function renderClips() {
    const body = $('clips').tBodies[0];
    body.replaceChildren();
    $('clips-empty').hidden = st.clips.length > 0;
    for (const c of st.clips.slice().reverse()) {
      const recording = c.state === 'recording';
      const stateCell = el('td', { className: 'state ' + c.state, textContent: c.state });
      if (recording) {
        const bar = el('progress', { max: 1, value: 0 });
        bar.dataset.start = c.start;
        bar.dataset.duration = c.duration;
        stateCell.append(bar);
      }
      if (c.video_id != null) {
        const v = st.videos.get(c.video_id);
        stateCell.append(el('small', { textContent: ' VOD #' + c.video_id + ' ' + (v ? v.status : '…') }));
      }
      const start = c.actual_start;
      const bounds = start == null ? 'nothing held yet' : clock(start, true) + ' → ' + clock(start + c.actual_duration, true);
      const expires = el('td', { className: 'expires' });
      expires.dataset.expiration = c.expiration;
      const preview = el('button', { type: 'button', textContent: 'Preview' });
      preview.addEventListener('click', () => openPreview(c));
      const download = el('a', { href: local(c.mp4_master), textContent: 'Download', className: 'button' });
      download.download = 'clip-' + c.id + '.mp4';
      if (recording) download.setAttribute('aria-disabled', 'true');
      const del = el('button', { type: 'button', textContent: 'Delete', className: 'danger' });
      del.addEventListener('click', () => deleteClip(c));
      const row = el(
        'tr',
        {},
        stateCell,
        el('td', { textContent: bounds + (c.precise ? ' (precise)' : '') }),
        el('td', { textContent: span(c.actual_duration) + ' of ' + c.duration + ' s' }),
        expires,
        el('td', { className: 'actions' }, preview, copyButton('Copy HLS', c.hls_master), copyButton('Copy MP4', c.mp4_master), download, del),
      );
      row.dataset.clipId = c.id;
      row.dataset.state = c.state;
      row.dataset.mp4 = c.mp4_master;
      row.dataset.hls = c.hls_master;
      body.append(row);
    }
    tick();
  }

  // Once a second: expiry countdowns and recording progress.
  function tick() {
    const now = Date.now() / 1000;
    for (const td of document.querySelectorAll('#clips td.expires')) {
      const left = Number(td.dataset.expiration) - now;
      td.textContent = left > 0 ? span(Math.round(left)) : 'expired';
    }
    for (const bar of document.querySelectorAll('#clips progress')) {
      const done = (now - Number(bar.dataset.start)) / Number(bar.dataset.duration);
      bar.value = Math.min(Math.max(done, 0), 1);
    }
  }

  async function deleteClip(c) {
    if (!window.confirm('Delete this clip? Its links stop working at once.')) return;
    try {
      await api('DELETE', 'streaming/streams/' + st.stream.id + '/clip_recording/' + c.id);
      if ($('preview').dataset.clipId === c.id) closePreview();
      say('Clip ' + c.id.slice(0, 8) + '… deleted.', 'info');
    } catch (e) {
      say('Delete refused: ' + describe(e));
    }
    await refreshClips();
  }

  function openPreview(c) {
    closePreview();
    const v = $('preview');
    v.dataset.clipId = c.id;
    $('preview-box').hidden = false;
    if (c.state === 'complete') {
      v.src = local(c.mp4_master);
    } else if (window.Hls && window.Hls.isSupported()) {
      // Recording: its MP4 answers 425 until complete; the HLS form grows.
      st.previewHls = new window.Hls();
      st.previewHls.loadSource(local(c.hls_master));
      st.previewHls.attachMedia(v);
    } else v.src = local(c.hls_master);
    v.play().catch((e) => say('Preview: ' + e.message));
  }

  function closePreview() {
    if (st.previewHls) st.previewHls.destroy();
    st.previewHls = null;
    const v = $('preview');
    v.pause();
    v.removeAttribute('src');
    delete v.dataset.clipId;
    v.load();
    $('preview-box').hidden = true;
  }

  // ---- keys and buttons ------------------------------------------------------------

  function togglePlay() {
    const v = $('player');
    if (v.paused) v.play().catch(() => {});
    else v.pause();
  }

  // Reverse shuttle: browsers do not play backwards, so J pauses and steps the
  // playhead back `reverse` seconds per second of wall time, four steps a second.
  function shuttleBack(speed) {
    stopShuttle();
    const v = $('player');
    v.pause();
    st.reverse = speed;
    st.shuttle = setInterval(() => {
      seekMedia(v.currentTime - st.reverse / 4);
      drawPlayhead();
    }, 250);
  }

  function stopShuttle() {
    if (st.shuttle) clearInterval(st.shuttle);
    st.shuttle = null;
    st.reverse = 0;
  }

  function onKey(ev) {
    if (!st.stream || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA')) return;
    const v = $('player');
    const key = ev.key.toLowerCase();
    if (['k', ' ', 'l', 'arrowleft', 'arrowright'].includes(key)) stopShuttle();
    switch (key) {
      case 'i': mark('in'); break;
      case 'o': mark('out'); break;
      case 'c': clipSelection(); break;
      case 'r': if (ev.shiftKey) recordNext(); else clipLast(); break;
      case 'k': case ' ':
        // K stops a shuttle (and pauses); alone it toggles play.
        if (v.playbackRate !== 1) {
          v.playbackRate = 1;
          v.pause();
        } else togglePlay();
        break;
      case 'l':
        // Shuttle forward: play, then each press doubles the speed (up to 8x).
        if (v.paused) {
          v.playbackRate = 1;
          v.play().catch(() => {});
        } else v.playbackRate = Math.min(v.playbackRate * 2, 8);
        break;
      case 'j':
        // Shuttle back: 1x, then each press doubles (up to 8x).
        shuttleBack(st.reverse ? Math.min(st.reverse * 2, 8) : 1);
        break;
      case '+': case '=': zoom(0.5, playheadWall()); break;
      case '-': zoom(2, playheadWall()); break;
      case '0':
        st.view = null;
        drawTimeline();
        break;
      case 'arrowleft': case 'arrowright': {
        const sign = ev.key === 'ArrowLeft' ? -1 : 1;
        if (ev.shiftKey) v.pause();
        seekMedia(v.currentTime + sign * (ev.shiftKey ? frameSecs() : 1));
        break;
      }
      default: return;
    }
    $('rate').textContent = st.reverse ? '◀ ' + st.reverse + '×' : v.playbackRate !== 1 ? v.playbackRate + '×' : '';
    ev.preventDefault();
    drawPlayhead();
  }

  function wire() {
    $('signin-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const key = $('key').value.trim();
      if (key) signIn(key);
    });
    $('signout').addEventListener('click', () => signOut());
    $('streams-refresh').addEventListener('click', refreshStreams);
    $('new-stream').addEventListener('submit', createStream);
    $('play').addEventListener('click', togglePlay);
    $('golive').addEventListener('click', () => {
      const v = $('player');
      const live = st.hls && st.hls.liveSyncPosition;
      seekMedia(live != null ? live : v.seekable.length ? v.seekable.end(v.seekable.length - 1) : v.currentTime);
      v.play().catch(() => {});
    });
    $('mark-in').addEventListener('click', () => mark('in'));
    $('mark-out').addEventListener('click', () => mark('out'));
    $('clip').addEventListener('click', clipSelection);
    $('clip-last').addEventListener('click', clipLast);
    $('record-next').addEventListener('click', recordNext);
    $('preview-close').addEventListener('click', closePreview);
    $('timeline').addEventListener('click', (ev) => {
      const x = extent();
      if (!x) return;
      const box = $('timeline').getBoundingClientRect();
      const f = Math.min(Math.max((ev.clientX - box.left) / box.width, 0), 1);
      seekWall(x.start + f * (x.end - x.start));
    });
    $('timeline').addEventListener('mousemove', hover);
    $('timeline').addEventListener(
      'wheel',
      (ev) => {
        const x = extent();
        if (!x) return;
        ev.preventDefault();
        const box = $('timeline').getBoundingClientRect();
        const f = Math.min(Math.max((ev.clientX - box.left) / box.width, 0), 1);
        zoom(ev.deltaY < 0 ? 0.8 : 1.25, x.start + f * (x.end - x.start));
      },
      { passive: false },
    );
    $('timeline').addEventListener('mouseleave', () => ($('tl-hover').hidden = true));
    const v = $('player');
    for (const e of ['timeupdate', 'seeked', 'pause', 'play']) v.addEventListener(e, drawPlayhead);
    document.addEventListener('keydown', onKey);
  }

  wire();
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) signIn(saved);
})();
