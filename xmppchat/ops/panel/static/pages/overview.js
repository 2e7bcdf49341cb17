// The "Overview" page (issue 19): live counts from GET overview (the same
// instruments as /metrics, summed over the workers and cluster nodes),
// refreshed every REFRESH_MS while the page is shown.
"use strict";

(() => {
  const REFRESH_MS = 5000;
  const {h} = Panel;

  function duration(seconds) {
    const s = Math.floor(seconds);
    const parts = [[Math.floor(s / 86400), "d"], [Math.floor(s / 3600) % 24, "h"],
                   [Math.floor(s / 60) % 60, "min"], [s % 60, "s"]];
    const first = parts.findIndex(([n]) => n > 0);
    return first < 0 ? "0 s" : parts.slice(first, first + 2).map(([n, unit]) => `${n} ${unit}`).join(" ");
  }

  // null: not measured yet (the first seconds after a start, review 19 B7)
  function rate(value) {
    if (value == null) return "–";
    return value >= 10 ? String(Math.round(value)) : String(Math.round(value * 10) / 10);
  }

  function card(stat, value, label, title) {
    return h("div", {class: "card", dataset: {stat}, title},
             h("div", {class: "value", text: value}), h("div", {class: "label", text: label}));
  }

  function draw(body, data) {
    const per = data.perMinute || {};
    const offline = data.offline || {};
    const cluster = data.cluster || {nodes: [], unreachable: []};
    const span = data.window ? `over the last ${Math.round(data.window)} s` : "measuring…";
    const errors = (per.rest4xx || 0) + (per.rest5xx || 0);
    const cards = h("div", {class: "cards"},
      card("sessions", String(data.sessions.total), "online sessions"),
      card("messages", rate(per.messages), "messages / min from clients", span),
      card("offline", offline.error ? "?" : String(offline.total), "offline messages waiting", offline.error),
      card("rest", rate(per.rest), "REST requests / min", span),
      card("rest-errors", `${rate(per.rest5xx)} / ${rate(per.rest4xx)}`, "REST 5xx / 4xx per min",
           per.rest ? `${Math.round(100 * errors / per.rest)} % of the requests failed` : span),
      card("nodes", cluster.enabled ? `${cluster.nodes.length} / ${cluster.nodes.length + cluster.unreachable.length}` : "1",
           cluster.enabled ? "cluster nodes answering" : "node (no cluster)"),
      card("uptime", duration(data.uptime), "uptime" + (data.node ? ` of ${data.node}` : "")),
      card("version", data.version, "xmppchat version"));
    const transports = Object.entries(data.sessions.byTransport).map(([transport, count]) => ({transport, count}));
    const parts = [
      cards,
      h("h2", {text: "Sessions by transport"}),
      Panel.table([{title: "Transport", key: "transport"}, {title: "Sessions", key: "count"}], transports),
      h("h2", {text: "Messages per minute"}),
      Panel.table([{title: "From clients", render: () => rate(per.messages)},
                   {title: "Delivered online", render: () => rate(per.delivered)},
                   {title: "Stored in history", render: () => rate(per.stored)},
                   {title: "Stored offline", render: () => rate(per.offline)}], [{}]),
      h("h2", {text: "Largest offline queues"}),
      offline.error ? h("p", {class: "muted", text: offline.error})
        : Panel.table([{title: "User", key: "jid"}, {title: "Messages waiting", key: "count"}], offline.top || []),
    ];
    if (cluster.enabled) {
      parts.push(h("h2", {text: "Cluster nodes"}), Panel.table([
        {title: "Node", key: "node"},
        {title: "State", render: n => n.unreachable ? "unreachable" : "answering"},
        {title: "Uptime", render: n => n.unreachable ? "" : duration(n.uptime)},
        {title: "Sessions", render: n => n.unreachable ? "" : String(Object.values(n.sessions).reduce((a, b) => a + b, 0))},
        {title: "Messages / min", render: n => n.unreachable ? "" : rate(n.perMinute.messages)},
      ], cluster.nodes.concat(cluster.unreachable.map(node => ({node, unreachable: true})))));
    }
    parts.push(h("p", {class: "muted updated",
                       text: `Updated ${new Date().toLocaleTimeString()}; refreshed every ${REFRESH_MS / 1000} s.`}));
    body.replaceChildren(...parts);
  }

  Panel.page("overview", {
    title: "Overview",
    order: 10,
    render: async (root) => {
      const body = h("div", {class: "overview"});
      root.append(body);
      let timer = null;
      let left = false;
      Panel.onLeave(() => { left = true; clearTimeout(timer); });
      const refresh = async () => {
        try {
          const data = await Panel.api("GET", "overview");
          if (left) return;
          draw(body, data);
        } catch (e) {
          if (e instanceof Panel.ApiError && e.status === 401) return;  // the sign-in form is shown
          if (!left) Panel.notice(e.message || String(e), "error");
        }
        if (!left) timer = setTimeout(refresh, REFRESH_MS);
      };
      await refresh();
    },
  });
})();
