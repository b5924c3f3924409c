// What every view shares: calls to the REST API with the tab's token, the status line, and
// swapping the main view.

export const TOKEN_KEY = "memp.token";
// summary: GET /v1/inspector/summary for the current token; flash: a message for the next view.
export const state = { summary: null, flash: "" };

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

// One call to the REST API; a failure carries the service's own error type and message.
export async function api(path, { method = "GET", body, raw = false, token } = {}) {
  const headers = { Authorization: `Bearer ${token ?? sessionStorage.getItem(TOKEN_KEY) ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "network", `The memp service did not answer (${err.message}).`);
  }
  if (!response.ok) {
    let type = "http_error";
    let message = `${response.status} ${response.statusText}`;
    try {
      ({ type, message } = (await response.json()).error);
    } catch { /* not one of memp's JSON errors: keep the status line */ }
    throw new ApiError(response.status, type, message);
  }
  return raw ? response : response.json();
}

export function say(message) {
  document.getElementById("status").textContent = message;
}

// Replace the main view and move focus to its heading, so keyboard and screen-reader users land
// on the new content rather than stay on the link they used.
export function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

// "#/procedure/abc?v=2" -> {parts: ["procedure", "abc"], params: URLSearchParams}
export function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

export function href(path, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined));
  return `#/${path}${q.toString() ? `?${q}` : ""}`;
}

// Navigate; re-render when the address does not change (e.g. after a status change).
export function go(path, params = {}) {
  const target = href(path, params);
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = target;
}
