// The frame viewer: the image from /api/frames/<camera>/<n>/image and the result's boxes painted on a canvas
// over it (toggled by a checkbox); a frame that retention removed says so instead of showing a broken image.
import { ApiError, api } from "./api.js";
import { formatLatency, formatTime } from "./format.js";
import { labelColor, toPixels } from "./overlay.js";
function byId(id) {
    const found = document.getElementById(id);
    if (found === null) {
        throw new Error(`the page lacks #${id}`);
    }
    return found;
}
export class FrameViewer {
    constructor(prefix) {
        this.prefix = prefix;
        this.boxes = [];
        this.dropped = new Set();
        this.selected = -1;
        byId(`${prefix}-image`).addEventListener("load", () => this.paint());
        const toggle = document.getElementById(`${prefix}-overlays`);
        toggle?.addEventListener("change", () => this.paint());
    }
    /** Show one inspection: its image, boxes and facts. */
    async show(result) {
        this.boxes = result.overlay_boxes ?? [];
        this.dropped = new Set();
        this.selected = this.boxes.length ? 0 : -1;
        const image = byId(`${this.prefix}-image`);
        const gone = byId(`${this.prefix}-gone`);
        gone.hidden = true;
        image.hidden = false;
        const url = `/api/frames/${encodeURIComponent(result.camera_id)}/${result.frame_number}/image?version=${encodeURIComponent(result.model.version)}`;
        const probe = await fetch(url, { credentials: "same-origin" });
        if (!probe.ok) {
            let message = `the image could not be read (${probe.status})`;
            try {
                message = String((await probe.json()).error ?? message);
            }
            catch {
                // not JSON: keep the status line
            }
            image.hidden = true;
            gone.hidden = false;
            gone.textContent = probe.status === 410 ? `Frame gone: ${message}` : message;
            this.clear();
        }
        else {
            const blob = await probe.blob();
            image.src = URL.createObjectURL(blob);
        }
        const meta = byId(`${this.prefix}-meta`);
        meta.replaceChildren();
        const facts = [
            ["frame", `${result.camera_id} #${result.frame_number}`],
            ["verdict", result.verdict],
            ["line / station", `${result.line_id} / ${result.station_id}`],
            ["part", result.part_id ?? "–"],
            ["model", `${result.model.name} ${result.model.version}`],
            ["captured", formatTime(result.captured_at)],
            ["capture → verdict", formatLatency(result.latency_ms)],
            ["score", result.metadata?.defect_score ?? "–"],
        ];
        for (const [term, value] of facts) {
            const dt = document.createElement("dt");
            dt.textContent = term;
            const dd = document.createElement("dd");
            dd.textContent = value;
            meta.append(dt, dd);
        }
    }
    toggleSelected() {
        if (this.selected < 0) {
            return;
        }
        if (this.dropped.has(this.selected)) {
            this.dropped.delete(this.selected);
        }
        else {
            this.dropped.add(this.selected);
        }
        this.paint();
    }
    nextBox() {
        if (this.boxes.length) {
            this.selected = (this.selected + 1) % this.boxes.length;
            this.paint();
        }
    }
    /** The boxes the reviewer kept (what a review writes). */
    kept() {
        return this.boxes
            .filter((_, index) => !this.dropped.has(index))
            .filter((b) => !(b.x_min === 0 && b.y_min === 0 && b.x_max === 1 && b.y_max === 1))
            .map((b) => ({ label: b.label ?? "defect", x_min: b.x_min, y_min: b.y_min, x_max: b.x_max, y_max: b.y_max }));
    }
    clear() {
        const canvas = byId(`${this.prefix}-canvas`);
        canvas.getContext("2d")?.clearRect(0, 0, canvas.width, canvas.height);
        canvas.dataset.boxes = "0";
    }
    paint() {
        const image = byId(`${this.prefix}-image`);
        const canvas = byId(`${this.prefix}-canvas`);
        const toggle = document.getElementById(`${this.prefix}-overlays`);
        canvas.width = image.clientWidth;
        canvas.height = image.clientHeight;
        const context = canvas.getContext("2d");
        if (context === null) {
            return;
        }
        context.clearRect(0, 0, canvas.width, canvas.height);
        const on = toggle === null || toggle.checked;
        let painted = 0;
        this.boxes.forEach((box, index) => {
            if (!on) {
                return;
            }
            const pixels = toPixels(box, canvas.width, canvas.height);
            const droppedBox = this.dropped.has(index);
            context.strokeStyle = droppedBox ? "rgba(160,160,160,0.8)" : labelColor(box.label ?? "defect");
            context.lineWidth = index === this.selected ? 4 : 2;
            context.setLineDash(droppedBox ? [6, 4] : []);
            context.strokeRect(pixels.x, pixels.y, pixels.width, pixels.height);
            context.font = "14px sans-serif";
            context.fillStyle = context.strokeStyle;
            context.fillText(pixels.label, pixels.x + 4, Math.max(14, pixels.y + 16));
            painted += droppedBox ? 0 : 1;
        });
        canvas.dataset.boxes = String(painted);
    }
}
export async function frameResults(camera, frame) {
    try {
        const found = await api.get(`/api/frames/${encodeURIComponent(camera)}/${frame}`);
        return found.results;
    }
    catch (error) {
        if (error instanceof ApiError && error.status === 404) {
            return [];
        }
        throw error;
    }
}
