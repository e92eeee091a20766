// Calls to the console's JSON API. The CSRF token handed out at sign-in goes with every write.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;

export function setCsrf(token: string | null): void {
  csrfToken = token;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
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
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { error: text };
  }
  if (!response.ok) {
    throw new ApiError(response.status, String(parsed.error ?? response.statusText), parsed);
  }
  return parsed as T;
}

export const api = {
  get: <T>(path: string): Promise<T> => call<T>("GET", path),
  post: <T>(path: string, body: unknown): Promise<T> => call<T>("POST", path, body),
  del: <T>(path: string): Promise<T> => call<T>("DELETE", path),
};
