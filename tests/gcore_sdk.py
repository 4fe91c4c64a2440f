"""Gcore's own Python SDK (`pip install gcore`) against a running `dvrclip serve --demo`.

Run by tests/gcore_sdk.rs: `python3 tests/gcore_sdk.py http://ADDR API_KEY`. Every call
is the SDK's, unchanged, pointed at dvrclip with `base_url`; the SDK parses each answer
into its own models, so a missing or mistyped field fails here. Where the SDK has no
method (one clip's GET and DELETE), its own client sends the request. Exits non-zero
on the first failed check; prints one line per step.
"""

import sys
import time

import gcore
import httpx
from gcore.types.streaming.streams import Clip


def step(what):
    print(f"sdk: {what}", flush=True)


def expect_error(kind, call):
    try:
        call()
    except kind as e:
        return e
    raise AssertionError(f"expected {kind.__name__}")


def main(base_url, api_key):
    client = gcore.Gcore(api_key=api_key, base_url=base_url, max_retries=0)
    streams = client.streaming.streams

    step("streams.create / get / list / update")
    made = streams.create(name="sdk", dvr_enabled=True, dvr_duration=600)
    assert made.id and made.name == "sdk" and made.dvr_duration == 600, made
    # --demo takes RTMP pushes: push_url is Gcore's RTMP URL, the HTTP base is beside it.
    assert made.push_url and made.push_url.startswith("rtmp://"), made.push_url
    assert made.model_extra.get("push_url_http", "").startswith(base_url), made
    # --demo takes SRT pushes too: the SDK's own push_url_srt field.
    assert made.push_url_srt and made.push_url_srt.startswith("srt://"), made.push_url_srt
    key = made.model_extra["push_url_http"].rsplit("/", 1)[-1]
    assert made.push_url_srt.endswith("?streamid=" + key), made.push_url_srt
    got = streams.get(made.id)
    assert (got.id, got.name, got.dvr_enabled) == (made.id, "sdk", True), got
    listed = [s.id for s in streams.list()]
    assert 1 in listed and made.id in listed, listed
    renamed = streams.update(made.id, stream={"name": "sdk-renamed", "dvr_duration": 300})
    assert (renamed.name, renamed.dvr_duration) == ("sdk-renamed", 300), renamed

    step("errors map to the SDK's exception classes")
    e = expect_error(gcore.BadRequestError, lambda: streams.clips.create(made.id, duration=301))
    assert e.status_code == 400
    expect_error(gcore.NotFoundError, lambda: streams.get(999_999))
    streams.update(made.id, stream={"dvr_enabled": False})
    e = expect_error(gcore.UnprocessableEntityError, lambda: streams.clips.create(made.id, duration=5))
    assert e.status_code == 422
    bad = gcore.Gcore(api_key="wrong", base_url=base_url, max_retries=0)
    expect_error(gcore.AuthenticationError, lambda: bad.streaming.streams.list())

    step("streams.clear_dvr / delete")
    streams.clear_dvr(made.id)
    streams.delete(made.id)
    expect_error(gcore.NotFoundError, lambda: streams.get(made.id))

    step("streams.create with pull and uri (HLS, RTMP and SRT URLs round robin), read back, switched off")
    uri = ("http://127.0.0.1:9/live/master.m3u8 https://origin.invalid/live/master.m3u8"
           " rtmp://127.0.0.1:9/live/k srt://127.0.0.1:9?streamid=k")
    pulled = streams.create(name="sdk-pull", pull=True, uri=uri)
    assert (pulled.pull, pulled.uri) == (True, uri), pulled
    got = streams.get(pulled.id)
    assert (got.pull, got.uri) == (True, uri), got
    e = expect_error(gcore.BadRequestError, lambda: streams.create(name="x", pull=True))
    assert e.body.get("field") == "uri", e.body
    e = expect_error(gcore.BadRequestError, lambda: streams.create(name="x", uri="rtmps://a/live/k"))
    assert e.body.get("field") == "uri", e.body
    off = streams.update(pulled.id, stream={"pull": False})
    assert (off.pull, off.uri) == (False, uri), off
    streams.delete(pulled.id)

    step("streams.list pages of 25, an empty page past the end")
    extra = [streams.create(name=f"page-{i}").id for i in range(25)]
    first, second = streams.list(page=1).items, streams.list(page=2).items
    assert len(first) == 25 and first[0].id == 1, [s.id for s in first]
    assert [s.id for s in streams.list().items] == [s.id for s in first]
    ids = [s.id for s in first + second]
    assert ids == sorted(set(ids)) and set(extra) <= set(ids), ids
    assert streams.list(page=3).items == [], "past the end"
    e = expect_error(gcore.BadRequestError, lambda: streams.list(page=0))
    assert e.body.get("field") == "page", e.body
    for sid in extra:
        streams.delete(sid)

    step("clips.create on the demo stream, with vod_required")
    demo = streams.get(1)
    assert demo.live and demo.hls_cmaf_url, demo
    # The demo has pushed 8 s or more (tests/gcore_sdk.rs waits for it): all held.
    start = int(time.time()) - 6
    clip = streams.clips.create(1, duration=2, start=start, vod_required=True)
    assert clip.id and clip.duration == 2 and clip.start == start, clip
    assert clip.hls_master and clip.mp4_master and clip.video_id, clip
    assert clip.renditions, clip
    assert clip.id in [c.id for c in streams.clips.list(1)]

    step("the clip's links, then the video")
    with httpx.Client(timeout=30) as web:
        master = web.get(clip.hls_master)
        assert master.status_code == 200 and master.text.startswith("#EXTM3U"), master
        deadline = time.time() + 60
        while (mp4 := web.get(clip.mp4_master)).status_code == 425:
            assert time.time() < deadline, "the clip never completed"
            time.sleep(0.5)
        assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp", mp4
        videos = client.streaming.videos
        while (video := videos.get(clip.video_id)).status == "pending":
            assert time.time() < deadline, "the video never left pending"
            time.sleep(0.5)
        assert video.status == "ready", video
        assert video.duration and video.duration >= 2000, video.duration
        url = video.converted_videos[0].mp4_url
        stored = web.get(url)
        assert stored.status_code == 200 and stored.content[4:8] == b"ftyp", stored

        step("one clip: get and delete (the SDK's own client: it has no method for them)")
        path = f"/streaming/streams/1/clip_recording/{clip.id}"
        got = client.get(path, cast_to=Clip)
        assert (got.id, got.hls_master, got.video_id) == (clip.id, clip.hls_master, clip.video_id), got
        assert got.model_extra.get("state") == "complete", got
        deleted = client.delete(path, cast_to=httpx.Response)
        assert deleted.status_code == 204, deleted
        expect_error(gcore.NotFoundError, lambda: client.get(path, cast_to=Clip))
        assert web.get(clip.mp4_master).status_code == 404
        assert web.get(clip.hls_master).status_code == 404
        assert clip.id not in [c.id for c in streams.clips.list(1)]

        step("videos.list / update / delete")
        listed = videos.list()
        assert video.id in [v.id for v in listed.items], listed
        assert videos.list(page=2).items == [], "one video: one page"
        renamed = videos.update(video.id, name="sdk video")
        assert (renamed.id, renamed.name) == (video.id, "sdk video"), renamed
        assert videos.get(video.id).name == "sdk video"
        e = expect_error(gcore.BadRequestError, lambda: videos.update(video.id, name=" "))
        assert e.body.get("field") == "name", e.body
        videos.delete(video.id)
        expect_error(gcore.NotFoundError, lambda: videos.get(video.id))
        expect_error(gcore.NotFoundError, lambda: videos.delete(video.id))
        assert video.id not in [v.id for v in videos.list().items]
        assert web.get(url).status_code == 404
    step("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
