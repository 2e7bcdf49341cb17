// The "Moderation" page (issue 19): the users' reports (UserReports and
// MessageReports custom objects, see [moderation]) with what they report,
// a reported message in its dialog, deleting it for everyone, blocking or
// deleting the reported user.  Admin API: GET reports, PUT reports/<id>,
// GET messages/<id>/context, DELETE messages/<id>, POST users/<name>/block
// and /unblock, DELETE users/<name>.
"use strict";

(() => {
  const {h} = Panel;
  const PAGE = 20;
  const DIALOG_TYPES = {1: "broadcast", 2: "group", 3: "private", 4: "public"};

  function who(user) {
    if (!user) return "";
    if (user.missing) return h("span", {class: "muted", text: `#${user.id} (no such user)`});
    const label = user.fullName || user.login || user.name;
    return h("span", {class: "user"}, label, " ", h("span", {class: "muted", text: `#${user.id}`}),
             user.blocked ? h("span", {class: "badge blocked", text: "blocked"}) : null);
  }

  function messageText(message) {
    if (message.deleted) return h("span", {class: "muted deleted", text: "(deleted)"});
    const text = message.text === null || message.text === undefined ? "" : message.text;
    return h("span", {class: "text"}, text,
             message.attachments ? h("span", {class: "muted", text: ` [${message.attachments} attachment(s)]`}) : null);
  }

  /** Actions on a user: block/unblock, delete; after(): what to do once done. */
  function userActions(user, after) {
    if (!user || user.missing) return [];
    const name = Panel.seg(user.jid);  // a name "." or ".." is no URL path segment (review 19 B4)
    const block = user.blocked
      ? Panel.button("Unblock", "unblock", async () => {
        await Panel.api("POST", `users/${name}/unblock`, {});
        Panel.notice(`${user.jid} can log in again.`, "ok");
        await after();
      }, {"data-user": user.name})
      : Panel.button("Block", "block", async () => {
        if (!Panel.confirm(`Block ${user.jid}? Their sessions end now and they can no longer log in.`)) return;
        const done = await Panel.api("POST", `users/${name}/block`, {});
        Panel.notice(`${done.blocked} is blocked; ${done.ended.length} session(s) ended.`, "ok");
        await after();
      }, {"data-user": user.name, class: "danger"});
    const remove = Panel.button("Delete user", "delete-user", async () => {
      if (!Panel.confirm(`Delete the account ${user.jid} for good?`)) return;
      await Panel.api("DELETE", `users/${name}`);
      Panel.notice(`${user.jid} was deleted.`, "ok");
      await after();
    }, {"data-user": user.name, class: "danger"});
    return [block, " ", remove];
  }

  function deleteMessageButton(message, after) {
    if (message.deleted) return null;
    return Panel.button("Delete for everyone", "delete-message", async () => {
      if (!Panel.confirm("Delete this message for everyone? It disappears from every history.")) return;
      await Panel.api("DELETE", `messages/${encodeURIComponent(message.id)}`);
      Panel.notice("The message was deleted for everyone.", "ok");
      await after();
    }, {"data-message": message.id, class: "danger"});
  }

  async function showReports(root, query, redraw) {
    const kind = query.kind === "message" ? "message" : "user";
    const skip = Math.max(0, Number(query.skip) || 0);
    const state = query.handled === "0" || query.handled === "1" ? query.handled : "";
    const link = (changes) => {
      const q = new URLSearchParams({kind, skip: String(skip), handled: state, ...changes});
      for (const [k, v] of [...q.entries()]) if (v === "") q.delete(k);
      return "#/moderation?" + q.toString();
    };
    const tabs = h("nav", {class: "tabs"},
      h("a", {href: link({kind: "user", skip: "0"}), class: kind === "user" ? "current" : null,
              dataset: {kind: "user"}, text: "User reports"}),
      h("a", {href: link({kind: "message", skip: "0"}), class: kind === "message" ? "current" : null,
              dataset: {kind: "message"}, text: "Message reports"}),
      h("select", {name: "handled", onchange: e => Panel.go(link({handled: e.target.value, skip: "0"}))},
        [["", "all"], ["0", "open"], ["1", "handled"]].map(([value, label]) =>
          h("option", {value, selected: value === state}, label))));
    root.append(tabs);
    const params = new URLSearchParams({kind, skip: String(skip), limit: String(PAGE)});
    if (state) params.set("handled", state);
    const data = await Panel.api("GET", "reports?" + params.toString());
    if (!data.declared) {
      root.append(h("p", {class: "muted", text: `The class ${data.class} is not in [rest] data_classes: ` +
                          "apps cannot store such reports."}));
    }
    const reload = redraw;
    const handle = report => Panel.button(report.handled ? "Reopen" : "Mark handled", "handle", async () => {
      await Panel.api("PUT", `reports/${encodeURIComponent(report.id)}`, {handled: !report.handled});
      Panel.notice(report.handled ? "The report is open again." : "The report is handled.", "ok");
      reload();
    }, {"data-report": report.id});
    const columns = [
      {title: "Reported", render: r => Panel.time(r.created)},
      {title: "Reporter", render: r => who(r.reporter)},
      {title: "Reason", render: r => r.reason === null || r.reason === undefined ? "" : String(r.reason)},
    ];
    if (kind === "user") {
      columns.push({title: "Reported user", render: r => who(r.user)});
    } else {
      columns.push({title: "Message", render: r => h("div", {class: "reported"}, messageText(r.message),
        r.message.deleted ? null : h("div", {class: "muted"}, "by ", who(r.message.sender), " · ",
                                     Panel.time(r.message.date)))});
    }
    columns.push({title: "Status", render: r => r.handled ? "handled" : "open"});
    columns.push({title: "Actions", render: r => h("div", {class: "actions"},
      kind === "message" && !r.message.deleted
        ? [Panel.button("In context", "context", () => Panel.go(`#/moderation/message/${encodeURIComponent(r.message.id)}`),
                        {"data-message": r.message.id}), " ",
           deleteMessageButton(r.message, reload), " ", ...userActions(r.message.sender, reload), " "]
        : [],
      kind === "user" ? [...userActions(r.user, reload), " "] : [],
      handle(r))});
    const table = Panel.table(columns, data.items);
    table.dataset.kind = kind;
    root.append(table);
    const pager = h("p", {class: "pager"},
      `${data.total ? skip + 1 : 0}–${skip + data.items.length} of ${data.total} `,
      skip > 0 ? h("a", {href: link({skip: String(Math.max(0, skip - PAGE))}), dataset: {action: "previous"}, text: "← newer"}) : null,
      " ",
      skip + data.items.length < data.total ? h("a", {href: link({skip: String(skip + PAGE)}), dataset: {action: "next"}, text: "older →"}) : null);
    root.append(pager);
  }

  async function showContext(root, messageId, redraw) {
    root.append(h("p", {}, h("a", {href: "#/moderation?kind=message", text: "← Message reports"})));
    let data;
    try {
      data = await Panel.api("GET", `messages/${encodeURIComponent(messageId)}/context?around=5`);
    } catch (e) {
      if (e.status === 404) {
        root.append(h("p", {class: "muted gone", text: "This message no longer exists (deleted)."}));
        return;
      }
      throw e;
    }
    const dialog = data.dialog;
    root.append(h("h2", {text: "Message in context"}),
      h("dl", {class: "props"},
        h("dt", {text: "Dialog"}), h("dd", {}, dialog ? `${dialog.name || "(no name)"} · ${DIALOG_TYPES[dialog.type] || "type " + dialog.type} · ${dialog.occupants} occupant(s)` : "(gone)",
                                   " ", h("span", {class: "muted", text: data.message.dialog})),
        h("dt", {text: "Sender"}), h("dd", {}, who(data.message.sender))));
    const row = (m, reported) => h("li", {class: reported ? "reported" : null, id: reported ? "reported-message" : null,
                                          dataset: {message: m.id}},
      h("span", {class: "meta"}, who(m.sender), " · ", Panel.time(m.date)), h("div", {}, messageText(m)));
    root.append(h("ol", {class: "context"}, data.before.map(m => row(m, false)), row(data.message, true),
                  data.after.map(m => row(m, false))));
    root.append(h("p", {class: "actions"}, deleteMessageButton(data.message, redraw), " ",
                  ...userActions(data.message.sender, redraw)));
  }

  Panel.page("moderation", {
    title: "Moderation",
    order: 50,
    render: async (root, params) => {
      // drawn into a box of its own, drawn again in place after an action
      // (its notice stays; a new route would clear it)
      const box = h("div");
      root.append(box);
      const draw = async () => {
        box.replaceChildren();
        if (params.path[0] === "message" && params.path[1]) await showContext(box, params.path[1], draw);
        else await showReports(box, params.query, draw);
      };
      await draw();
    },
  });
})();
