/*
 * The web admin panel's core (issue 19): sign-in, the page registry and
 * hash router, the admin API client (CSRF header, errors) and small DOM
 * helpers.  Plain browser JavaScript, no build step, no dependencies.
 * Every page is one script in pages/ that calls Panel.page(...).
 */
"use strict";

const Panel = (() => {
  const pages = new Map();
  let csrf = null;
  let admin = null;
  let leaving = [];  // functions to call when the current page is left

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** Build an element: h("a", {href: "#/x", onclick: fn, text: "x"}, child, ...). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) {
        if (typeof value !== "function") throw new TypeError("h(): " + key + " must be a function");
        el.addEventListener(key.slice(2), value);
      } else if ((key === "href" || key === "src") && !/^(https?:|#|[^:]*$)/i.test(String(value))) {
        throw new TypeError("h(): refusing the URL " + value);
      }
      else if (key === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /**
   * One path segment for api(): encoded, so that a name like "../x" stays one segment.  "." and ".."
   * cannot be one (a URL resolves them, encoded or not: review 19 B4): refused; address users by JID.
   */
  function seg(value) {
    const text = String(value);
    if (text === "." || text === "..") throw new Error(`"${text}" cannot be addressed in a URL path`);
    return encodeURIComponent(text);
  }

  /** Call the admin API: path relative to /admin/api/ (segments through seg()); resolves to the decoded JSON. */
  async function api(method, path, body) {
    const headers = {"Accept": "application/json"};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
    const response = await fetch("api/" + path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!response.ok) {
      if (response.status === 401 && path !== "session") showSignIn("Your session is over: sign in again.");
      throw new ApiError(response.status, data.error || response.statusText);
    }
    return data;
  }

  function notice(text, kind) {
    const el = document.getElementById("notice");
    el.textContent = text;
    el.className = kind || "ok";
    el.hidden = !text;
  }

  function time(value) {
    if (value === null || value === undefined || value === "") return "";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return isNaN(date) ? String(value) : date.toLocaleString();
  }

  /** A table of class "results": columns [{title, key}] or [{title, render: row => node|string}]. */
  function table(columns, rows) {
    const head = h("tr", {}, columns.map(c => h("th", {text: c.title})));
    const body = rows.map(row => h("tr", {}, columns.map(c => {
      const value = c.render ? c.render(row) : row[c.key];
      return h("td", {}, value instanceof Node ? value : (value === null || value === undefined ? "" : String(value)));
    })));
    if (!rows.length) body.push(h("tr", {}, h("td", {colspan: columns.length, class: "empty", text: "Nothing here."})));
    return h("table", {class: "results"}, h("thead", {}, head), h("tbody", {}, body));
  }

  /**
   * A form: fields [{name, label, type?, value?, options?, required?, placeholder?}]
   * (type: text, password, number, textarea, select, checkbox); onSubmit(values)
   * may be async; what it throws is shown as an error notice.
   */
  function form(fields, submitText, onSubmit, props) {
    const inputs = fields.map(f => {
      let input;
      if (f.type === "textarea") {
        input = h("textarea", {name: f.name, required: f.required, placeholder: f.placeholder, rows: f.rows || 4});
        input.value = f.value || "";
      } else if (f.type === "select") {
        input = h("select", {name: f.name}, (f.options || []).map(o => {
          const [value, label] = Array.isArray(o) ? o : [o, o];
          return h("option", {value, selected: String(value) === String(f.value ?? "")}, label);
        }));
      } else {
        input = h("input", {name: f.name, type: f.type || "text", required: f.required,
                            placeholder: f.placeholder, autocomplete: f.autocomplete || "off"});
        if (f.type === "checkbox") input.checked = Boolean(f.value);
        else if (f.value !== undefined && f.value !== null) input.value = f.value;
      }
      return h("label", {class: f.type === "checkbox" ? "check" : null}, h("span", {text: f.label || f.name}), input);
    });
    const button = h("button", {type: "submit", dataset: {action: (props && props.action) || "submit"}}, submitText);
    const el = h("form", {class: "form", ...(props && props.attrs)}, inputs, button);
    el.addEventListener("submit", async event => {
      event.preventDefault();
      const values = {};
      for (const f of fields) {
        const input = el.elements[f.name];
        values[f.name] = f.type === "checkbox" ? input.checked
          : f.type === "number" ? (input.value === "" ? null : Number(input.value)) : input.value;
      }
      button.disabled = true;
      try {
        await onSubmit(values);
      } catch (e) {
        notice(e.message || String(e), "error");
      } finally {
        button.disabled = false;
      }
    });
    return el;
  }

  /** A button that runs an action (async), with data-action for tests; errors become notices. */
  function button(text, action, run, props) {
    return h("button", {type: "button", dataset: {action}, ...props, onclick: async event => {
      event.target.disabled = true;
      try { await run(event); } catch (e) { notice(e.message || String(e), "error"); }
      finally { event.target.disabled = false; }
    }}, text);
  }

  function confirm(text) {
    return window.confirm(text);
  }

  function page(name, spec) {
    pages.set(name, {name, title: spec.title || name, order: spec.order || 100, render: spec.render,
                     hidden: Boolean(spec.hidden)});
  }

  /** Run fn when the current page is left (timers of live pages). */
  function onLeave(fn) {
    leaving.push(fn);
  }

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [pathPart, queryPart] = raw.split("?", 2);
    const decode = part => { try { return decodeURIComponent(part); } catch (e) { return part; } };
    const path = pathPart.split("/").filter(Boolean).map(decode);
    const query = Object.fromEntries(new URLSearchParams(queryPart || ""));
    return {name: path.shift() || "overview", path, query};
  }

  function drawNav(current) {
    const nav = document.getElementById("nav");
    nav.replaceChildren(...[...pages.values()].filter(() => admin).filter(p => !p.hidden).sort((a, b) => a.order - b.order)
      .map(p => h("a", {href: "#/" + p.name, class: p.name === current ? "current" : null,
                        dataset: {page: p.name}, text: p.title})));
    const who = document.getElementById("who");
    who.replaceChildren(admin ? h("span", {}, admin, " ", button("Sign out", "sign-out", signOut)) : "");
  }

  async function route() {
    for (const fn of leaving.splice(0)) { try { fn(); } catch (e) { /* ignore */ } }
    if (!admin) return;
    const params = parseHash();
    const spec = pages.get(params.name);
    const main = document.getElementById("main");
    drawNav(params.name);
    notice("");
    if (!spec) {
      main.replaceChildren(h("section", {id: "page-missing"}, h("h1", {text: "No such page"})));
      return;
    }
    const root = h("section", {id: "page-" + spec.name, class: "page"}, h("h1", {text: spec.title}));
    main.replaceChildren(root);
    try {
      await spec.render(root, params);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) notice(e.message || String(e), "error");
    }
  }

  function showSignIn(message) {
    admin = null;
    csrf = null;
    drawNav(null);
    const main = document.getElementById("main");
    const root = h("section", {id: "page-signin", class: "page signin"}, h("h1", {text: "Sign in"}));
    root.append(form([
      {name: "name", label: "Administrator", required: true, autocomplete: "username"},
      {name: "password", label: "Password", type: "password", required: true, autocomplete: "current-password"},
    ], "Sign in", async values => {
      const answer = await api("POST", "session", values);
      admin = answer.name;
      csrf = answer.csrf;
      notice("");
      if (!location.hash || location.hash === "#/signin") location.hash = "#/overview";
      else route();
    }, {action: "sign-in"}));
    main.replaceChildren(root);
    if (message) notice(message, "error");
  }

  async function signOut() {
    try {
      await api("DELETE", "session");
    } catch (e) {
      notice("Sign-out failed, you are still signed in: " + e.message, "error");
      return;
    }
    showSignIn();
    notice("Signed out.", "ok");
  }

  async function start() {
    window.addEventListener("hashchange", route);
    try {
      const answer = await api("GET", "session");
      admin = answer.name;
      csrf = answer.csrf;
      route();
    } catch (e) {
      showSignIn();
    }
  }

  return {ApiError, api, seg, h, table, form, button, notice, time, confirm, page, go, onLeave, start,
          get admin() { return admin; }};
})();
