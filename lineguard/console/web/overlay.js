// Geometry and colours of the boxes drawn over a frame (pure: the canvas code in view.ts only paints).
function clamp01(value) {
    return Math.min(1, Math.max(0, value));
}
/** A normalized box in pixels of a ``width`` x ``height`` picture, clamped to the picture. */
export function toPixels(box, width, height) {
    const x0 = clamp01(Math.min(box.x_min, box.x_max));
    const x1 = clamp01(Math.max(box.x_min, box.x_max));
    const y0 = clamp01(Math.min(box.y_min, box.y_max));
    const y1 = clamp01(Math.max(box.y_min, box.y_max));
    const score = typeof box.score === "number" ? ` ${box.score.toFixed(2)}` : "";
    return {
        x: Math.round(x0 * width),
        y: Math.round(y0 * height),
        width: Math.round((x1 - x0) * width),
        height: Math.round((y1 - y0) * height),
        label: `${box.label ?? "defect"}${score}`,
    };
}
/** A stable colour per class, so "scratch" looks the same on every frame. */
export function labelColor(label) {
    let hash = 0;
    for (let i = 0; i < label.length; i += 1) {
        hash = (hash * 31 + label.charCodeAt(i)) >>> 0;
    }
    return `hsl(${hash % 360}, 85%, 55%)`;
}
