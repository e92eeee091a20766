// Front-end unit tests on the pure modules, run on the committed JS (what the console serves).
import assert from "node:assert/strict";
import { test } from "node:test";

import { FeedBuffer, topRegion } from "../../lineguard/console/web/feed.js";
import { formatLatency, formatPercent, moreText, queryString } from "../../lineguard/console/web/format.js";
import { reviewAction, reviewBody } from "../../lineguard/console/web/keys.js";
import { labelColor, toPixels } from "../../lineguard/console/web/overlay.js";

const item = (id, score = 0.9) => ({
  event_id: id,
  camera_id: "cam-a",
  line_id: "line-1",
  station_id: "s1",
  frame_number: 1,
  part_id: null,
  captured_at: "2026-12-03T06:00:00+00:00",
  detected_at: "2026-12-03T06:00:00.2+00:00",
  latency_ms: 200,
  model: { name: "m", version: "v1" },
  verdict: "DEFECT",
  regions: [
    { label: "dent", score: 0.3, box: { x_min: 0, y_min: 0, x_max: 1, y_max: 1 }, crop: null },
    { label: "scratch", score, box: { x_min: 0, y_min: 0, x_max: 1, y_max: 1 }, crop: null },
  ],
  received_ms: 0,
});

test("the feed shows the newest first, at most `visible`, and counts what did not fit", () => {
  const feed = new FeedBuffer(3, 4);
  for (let i = 0; i < 6; i += 1) feed.push(item(`e${i}`));
  assert.equal(feed.pendingCount(), 4);
  assert.equal(feed.dropped, 2);
  const fresh = feed.drain();
  assert.deepEqual(fresh.map((i) => i.event_id), ["e3", "e2", "e1", "e0"]);
  assert.deepEqual(feed.items().map((i) => i.event_id), ["e3", "e2", "e1"]);
  feed.push(item("e9"));
  feed.addDropped(5);
  feed.drain();
  assert.deepEqual(feed.items().map((i) => i.event_id), ["e9", "e3", "e2"]);
  assert.equal(feed.dropped, 7);
  assert.equal(feed.drain().length, 0);
});

test("a duplicate event (a reconnect replays the recent ones) is shown once", () => {
  const feed = new FeedBuffer();
  assert.equal(feed.push(item("a")), true);
  assert.equal(feed.push(item("a")), false);
  feed.drain();
  assert.equal(feed.push(item("a")), false);
  assert.equal(feed.items().length, 1);
  assert.equal(feed.dropped, 0);
});

test("the card names the highest-scoring region", () => {
  assert.equal(topRegion(item("x", 0.95)).label, "scratch");
  assert.equal(topRegion({ ...item("y"), regions: [] }), null);
});

test("boxes scale to pixels, clamp to the picture and carry label and score", () => {
  assert.deepEqual(toPixels({ label: "dent", score: 0.876, x_min: 0.1, y_min: 0.2, x_max: 0.5, y_max: 1.4 }, 200, 100), {
    x: 20, y: 20, width: 80, height: 80, label: "dent 0.88",
  });
  assert.equal(toPixels({ x_min: 0.5, y_min: 0, x_max: 0.25, y_max: 1 }, 100, 100).x, 25);
  assert.equal(labelColor("scratch"), labelColor("scratch"));
  assert.notEqual(labelColor("scratch"), labelColor("dent"));
});

test("formats and query strings", () => {
  assert.equal(formatLatency(183.4), "183 ms");
  assert.equal(formatLatency(2500), "2.5 s");
  assert.equal(formatLatency(null), "–");
  assert.equal(formatPercent(0.1234), "12.3 %");
  assert.equal(queryString({ line: "line 1", camera: "", limit: 25, cursor: null }), "?line=line%201&limit=25");
  assert.equal(queryString({}), "");
  assert.equal(moreText(0), "");
  assert.match(moreText(12), /^12 more/);
});

test("review keys map to decisions and bodies", () => {
  const classes = ["dent", "scratch"];
  assert.deepEqual(reviewAction("c", classes), { kind: "confirm" });
  assert.deepEqual(reviewAction("Enter", classes), { kind: "confirm" });
  assert.deepEqual(reviewAction("g", classes), { kind: "good" });
  assert.deepEqual(reviewAction("2", classes), { kind: "relabel", label: "scratch" });
  assert.equal(reviewAction("3", classes), null);
  assert.equal(reviewAction("q", classes), null);
  const frame = { camera_id: "cam-a", frame_number: 4, model: { version: "v2" } };
  const box = { label: "dent", x_min: 0.1, y_min: 0.1, x_max: 0.2, y_max: 0.2 };
  assert.deepEqual(reviewBody(frame, { kind: "good" }, "dent", [box]), {
    camera_id: "cam-a", frame_number: 4, model_version: "v2", label: "good", action: "good", boxes: [],
  });
  assert.equal(reviewBody(frame, { kind: "relabel", label: "scratch" }, "dent", [box]).boxes[0].label, "scratch");
  assert.equal(reviewBody(frame, { kind: "confirm" }, "dent", [box]).label, "dent");
  assert.equal(reviewBody(frame, { kind: "skip" }, "dent", []), null);
});
