// Text the pages show, and the query strings they send (pure).
export function formatLatency(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) {
        return "–";
    }
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
export function formatPercent(share) {
    if (share === null || share === undefined || !Number.isFinite(share)) {
        return "–";
    }
    return `${(share * 100).toFixed(1)} %`;
}
export function formatTime(iso) {
    const moment = new Date(iso);
    return Number.isNaN(moment.getTime()) ? iso : moment.toISOString().replace("T", " ").slice(0, 19);
}
/** ``?a=1&b=x`` of the non-empty values (an empty field in a filter form means "any"). */
export function queryString(params) {
    const parts = [];
    for (const [key, value] of Object.entries(params)) {
        if (value === null || value === undefined || value === "") {
            continue;
        }
        parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
    }
    return parts.length ? `?${parts.join("&")}` : "";
}
/** A "n more" line for events that were counted but not shown. */
export function moreText(dropped) {
    return dropped > 0 ? `${dropped} more not shown (the feed is faster than the page)` : "";
}
