// The console page: sign-in, then three screens (live, frames, review) switched by the URL's hash.
import { ApiError, api, setCsrf } from "./api.js";
import { FeedBuffer, topRegion } from "./feed.js";
import { formatLatency, formatPercent, formatTime, moreText, queryString } from "./format.js";
import { reviewAction, reviewBody } from "./keys.js";
import { FrameViewer, frameResults } from "./view.js";
const $ = (id) => document.getElementById(id);
const feed = new FeedBuffer();
let me = null;
let source = null;
let frameViewer;
let reviewViewer;
let listCursor = null;
let queue = [];
function element(tag, className, text) {
    const made = document.createElement(tag);
    made.className = className;
    if (text !== undefined) {
        made.textContent = text;
    }
    return made;
}
function showError(error) {
    const message = error instanceof Error ? error.message : String(error);
    $("status").textContent = message;
    if (error instanceof ApiError && error.status === 401) {
        signedOut();
    }
}
// ------------------------------------------------------------------------------------------ sign-in
function signedIn(who) {
    me = who;
    setCsrf(who.csrf);
    $("signin").hidden = true;
    $("app").hidden = false;
    $("who").textContent = `${who.name} (${who.role})`;
    $("nav-review").hidden = who.role === "viewer";
    startLive();
    route();
}
function signedOut() {
    me = null;
    setCsrf(null);
    source?.close();
    source = null;
    $("app").hidden = true;
    $("signin").hidden = false;
}
async function signIn(event) {
    event.preventDefault();
    const name = $("signin-name").value;
    const password = $("signin-password").value;
    try {
        signedIn(await api.post("/api/session", { name, password }));
        $("signin-error").textContent = "";
    }
    catch (error) {
        $("signin-error").textContent = error instanceof Error ? error.message : String(error);
    }
}
// ------------------------------------------------------------------------------------------ live
function startLive() {
    source?.close();
    source = new EventSource("/api/live");
    source.addEventListener("defect", (message) => {
        feed.push(JSON.parse(message.data));
    });
    source.addEventListener("more", (message) => {
        feed.addDropped(JSON.parse(message.data).count);
    });
    source.addEventListener("hello", () => {
        $("live-state").textContent = "live";
    });
    source.onerror = () => {
        $("live-state").textContent = "reconnecting…";
    };
}
function card(item) {
    const li = element("li", "defect-card");
    li.dataset.eventId = item.event_id;
    const region = topRegion(item);
    if (region?.crop) {
        const img = document.createElement("img");
        img.src = `data:image/jpeg;base64,${region.crop}`;
        img.alt = region.label;
        li.append(img);
    }
    const text = element("div", "facts");
    text.append(element("strong", "label", `${region?.label ?? item.verdict} ${region ? region.score.toFixed(2) : ""}`), element("span", "verdict", item.verdict), element("span", "where", `${item.line_id} · ${item.station_id} · ${item.camera_id} #${item.frame_number}`), element("span", "part", item.part_id ? `part ${item.part_id}` : "no part id"), element("span", "model", `${item.model.name} ${item.model.version}`), element("span", "latency", `capture→verdict ${formatLatency(item.latency_ms)}`), element("time", "at", formatTime(item.captured_at)));
    li.append(text);
    li.addEventListener("click", () => {
        location.hash = `#frame/${encodeURIComponent(item.camera_id)}/${item.frame_number}`;
    });
    return li;
}
function renderLive() {
    const fresh = feed.drain();
    if (fresh.length) {
        const list = $("live-list");
        for (const item of fresh.slice().reverse()) {
            list.prepend(card(item));
        }
        while (list.children.length > feed.visible) {
            list.lastElementChild?.remove();
        }
    }
    $("live-more").textContent = moreText(feed.dropped);
    requestAnimationFrame(renderLive);
}
async function refreshTiles() {
    if (me === null) {
        return;
    }
    try {
        const found = await api.get("/api/tiles?window_min=15");
        const box = $("tiles");
        box.replaceChildren();
        for (const tile of found.tiles) {
            const div = element("div", "tile");
            div.append(element("h3", "", tile.line_id), element("span", "", `${tile.frames_per_min} frames/min`), element("span", "", `defects ${formatPercent(tile.defect_rate)}`), element("span", "", `yield ${formatPercent(tile.yield)}`), element("span", "", `lag ${tile.lag_seconds === null ? "–" : `${tile.lag_seconds} s`}`));
            box.append(div);
        }
        box.append(element("div", "tile dead", `dead letters: ${found.dead_letters ?? "–"}`));
    }
    catch (error) {
        showError(error);
    }
}
// ------------------------------------------------------------------------------------------ frames
function filterParams() {
    const form = $("filter");
    const params = {};
    for (const [key, value] of new FormData(form).entries()) {
        params[key] = String(value);
    }
    return params;
}
async function loadList(more) {
    try {
        const params = { ...filterParams(), limit: "25", cursor: more ? (listCursor ?? "") : "" };
        const page = await api.get(`/api/inspections${queryString(params)}`);
        const body = $("frames-rows");
        if (!more) {
            body.replaceChildren();
        }
        for (const row of page.items) {
            const tr = document.createElement("tr");
            tr.className = `verdict-${row.verdict}`;
            for (const text of [
                formatTime(row.captured_at),
                row.line_id,
                row.camera_id,
                String(row.frame_number),
                row.verdict,
                row.model.version,
                formatLatency(row.latency_ms),
            ]) {
                tr.append(element("td", "", text));
            }
            tr.addEventListener("click", () => void openFrame(row.camera_id, row.frame_number));
            body.append(tr);
        }
        listCursor = page.next;
        $("frames-next").hidden = page.next === null;
    }
    catch (error) {
        showError(error);
    }
}
async function openFrame(camera, frame) {
    try {
        const results = await frameResults(camera, frame);
        if (!results.length) {
            $("status").textContent = `no inspection of ${camera} #${frame}`;
            return;
        }
        $("viewer").hidden = false;
        await frameViewer.show(results[0]);
    }
    catch (error) {
        showError(error);
    }
}
// ------------------------------------------------------------------------------------------ review
function rulesParams() {
    const form = $("rules");
    const data = new FormData(form);
    const params = { uncertain: data.get("uncertain") ? "1" : "0", limit: "50" };
    for (const key of ["band_low", "band_high", "share", "versions", "line"]) {
        params[key] = String(data.get(key) ?? "");
    }
    return params;
}
function classesOf(item) {
    const names = new Set();
    for (const score of item.class_scores ?? []) {
        if (score.label !== "good") {
            names.add(score.label);
        }
    }
    for (const box of item.overlay_boxes) {
        if (box.label) {
            names.add(box.label);
        }
    }
    return [...names].sort();
}
function modelLabel(item) {
    const scores = (item.class_scores ?? []).filter((s) => s.label !== "good");
    if (item.verdict === "OK") {
        return "good";
    }
    if (item.overlay_boxes.length && item.overlay_boxes[0].label) {
        return String(item.overlay_boxes[0].label);
    }
    return scores.length ? scores.reduce((a, b) => (b.score > a.score ? b : a)).label : "defect";
}
async function loadQueue() {
    try {
        const found = await api.get(`/api/review/queue${queryString(rulesParams())}`);
        queue = found.items;
        await showQueueHead();
    }
    catch (error) {
        showError(error);
    }
}
async function showQueueHead() {
    $("review-left").textContent = `${queue.length} to review`;
    const head = queue[0];
    $("review-current").hidden = head === undefined;
    if (head === undefined) {
        return;
    }
    $("review-rule").textContent = `picked by: ${head.rule ?? "?"} · model says ${modelLabel(head)}`;
    const classes = $("review-classes");
    classes.replaceChildren();
    classesOf(head).forEach((name, index) => {
        const button = element("button", "class-button", `${index + 1} ${name}`);
        button.addEventListener("click", () => void decide(String(index + 1)));
        classes.append(button);
    });
    await reviewViewer.show(head);
}
async function decide(key) {
    const head = queue[0];
    if (head === undefined) {
        return;
    }
    const action = reviewAction(key, classesOf(head));
    if (action === null) {
        return;
    }
    if (action.kind === "toggle-box") {
        reviewViewer.toggleSelected();
        return;
    }
    if (action.kind === "next-box") {
        reviewViewer.nextBox();
        return;
    }
    const body = reviewBody(head, action, modelLabel(head), reviewViewer.kept());
    try {
        if (body !== null) {
            await api.post("/api/reviews", body);
            $("status").textContent = `saved: ${head.camera_id} #${head.frame_number} → ${body.label}`;
        }
        queue.shift();
        await showQueueHead();
    }
    catch (error) {
        showError(error);
    }
}
// ------------------------------------------------------------------------------------------ routing
function route() {
    const [screen, camera, frame] = location.hash.replace(/^#/, "").split("/");
    const name = screen === "frame" ? "frames" : screen || "live";
    for (const section of ["live", "frames", "review"]) {
        $(`view-${section}`).hidden = section !== name;
        $(`nav-${section}`).classList.toggle("active", section === name);
    }
    if (screen === "frame" && camera !== undefined && frame !== undefined) {
        void loadList(false);
        void openFrame(decodeURIComponent(camera), Number(frame));
    }
    else if (name === "frames") {
        void loadList(false);
    }
    else if (name === "review") {
        void loadQueue();
    }
}
function start() {
    frameViewer = new FrameViewer("viewer");
    reviewViewer = new FrameViewer("review");
    $("signin-form").addEventListener("submit", (event) => void signIn(event));
    $("signout").addEventListener("click", () => {
        void api.del("/api/session").finally(signedOut);
    });
    $("filter").addEventListener("submit", (event) => {
        event.preventDefault();
        void loadList(false);
    });
    $("frames-next").addEventListener("click", () => void loadList(true));
    $("rules").addEventListener("submit", (event) => {
        event.preventDefault();
        void loadQueue();
    });
    for (const [id, key] of [["review-confirm", "c"], ["review-good", "g"], ["review-skip", "s"]]) {
        $(id).addEventListener("click", () => void decide(key));
    }
    document.addEventListener("keydown", (event) => {
        const typing = event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement;
        if (typing || $("view-review").hidden || me === null) {
            return;
        }
        if (reviewAction(event.key, queue[0] ? classesOf(queue[0]) : []) !== null) {
            event.preventDefault();
            void decide(event.key);
        }
    });
    window.addEventListener("hashchange", route);
    requestAnimationFrame(renderLive);
    setInterval(() => void refreshTiles(), 5000);
    api
        .get("/api/session")
        .then((who) => {
        signedIn(who);
        void refreshTiles();
    })
        .catch(() => signedOut());
    $("signin-form").addEventListener("submit", () => setTimeout(() => void refreshTiles(), 300));
}
start();
