// Calls to the console's JSON API. The CSRF token handed out at sign-in goes with every write.
export class ApiError extends Error {
    constructor(status, message, body = {}) {
        super(message);
        this.status = status;
        this.body = body;
    }
}
let csrfToken = null;
export function setCsrf(token) {
    csrfToken = token;
}
async function call(method, path, body) {
    const headers = { accept: "application/json" };
    if (body !== undefined) {
        headers["content-type"] = "application/json";
    }
    if (method !== "GET" && csrfToken !== null) {
        headers["x-csrf-token"] = csrfToken;
    }
    const response = await fetch(path, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed = {};
    try {
        parsed = text ? JSON.parse(text) : {};
    }
    catch {
        parsed = { error: text };
    }
    if (!response.ok) {
        throw new ApiError(response.status, String(parsed.error ?? response.statusText), parsed);
    }
    return parsed;
}
export const api = {
    get: (path) => call("GET", path),
    post: (path, body) => call("POST", path, body),
    del: (path) => call("DELETE", path),
};
