// The inspector shell: the token, calls to the REST API, and hash routing between views.
import { ApiError, TOKEN_KEY, api, parseHash, say, show, state } from "./core.js";
import { errorBox, h } from "./dom.js";
import * as views from "./views.js";
import * as experiments from "./experiments.js";

function forgetToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.summary = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("namespace").hidden = true;
  showLogin(message);
}

function showLogin(message) {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true,
    "aria-describedby": "token-help" });
  const problem = message ? errorBox(message) : null;
  if (problem) problem.id = "login-error";
  const form = h("form", { class: "card login", onsubmit: async (ev) => {
    ev.preventDefault();
    await login(input.value.trim());
  } },
  h("h1", {}, "Open a memory"),
  problem,
  h("label", { for: "token" }, "Service token", input),
  h("p", { id: "token-help", class: "muted" },
    "A token from the service's token list (MEMP_TOKENS or --tokens). It decides which namespace you see, "
    + "and is kept only in this tab."),
  h("button", { type: "submit" }, "Open"));
  say("");
  show(form);
  input.focus();
}

async function login(token) {
  try {
    state.summary = await api("/v1/inspector/summary", { token });
  } catch (err) {
    const why = err.status === 401
      ? "The service refused this token (401 unauthorized). Check it against the service's token list; nothing was loaded."
      : `Could not reach the service: ${err.message}`;
    forgetToken(why);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  enterApp();
  if (!location.hash || location.hash === "#/" || location.hash === "#") location.hash = "#/procedures";
  else route();
}

function enterApp() {
  const ns = document.getElementById("namespace");
  ns.textContent = `namespace: ${state.summary.namespace}`;
  ns.hidden = false;
  document.getElementById("nav").hidden = false;
}

const ROUTES = {
  procedures: (p, q) => views.procedures(q),
  search: (p, q) => views.search(q),
  procedure: (p, q) => views.procedure(p[1], q),
  trajectory: (p) => views.trajectory(p[1]),
  deprecations: (p, q) => views.deprecations(q),
  experiments: (p) => (p[1] ? experiments.experiment(p[1]) : experiments.list()),
};

async function route() {
  if (!state.summary) return;
  const { parts, params } = parseHash();
  const name = parts[0] || "procedures";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = ROUTES[name];
  say("Loading…");
  try {
    if (!view) throw new ApiError(404, "not_found", `There is no view called "${name}".`);
    await view(parts, params);
    say(state.flash);
    state.flash = "";
  } catch (err) {
    if (err.status === 401) {
      forgetToken("The service no longer accepts this token (401 unauthorized). Enter a valid token.");
      return;
    }
    say("");
    show(h("h1", {}, "Something went wrong"), errorBox(err.message));
  }
}

document.getElementById("logout").addEventListener("click", () => forgetToken(""));
window.addEventListener("hashchange", route);

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) login(saved);
else showLogin("");
