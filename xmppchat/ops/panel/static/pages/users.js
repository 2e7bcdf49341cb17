// The "Users" page (issue 19): search the accounts, create one; a user's
// view shows the profile and custom data, live sessions (kick), the login
// lockout (unlock), the dialogs, and resets the password or deletes the
// user.  Admin API: GET users?q=&skip=&limit=, POST users, GET users/<name>,
// POST users/<name>/kick, POST users/<name>/unlock, PUT users/<name>/password,
// DELETE users/<name> (xmppchat/ops/admin/users.py).
"use strict";

(() => {
  const {h} = Panel;
  const PAGE = 20;
  const DIALOG_TYPES = {1: "broadcast", 2: "group", 3: "private", 4: "public"};

  const enc = encodeURIComponent;
  // users are addressed by JID: a name "." or ".." is no URL path segment (review 19 B4)
  const userLink = user => h("a", {href: "#/users/" + enc(user.jid), text: user.name});

  /** The list: a search form, one page of results, the create form. */
  async function drawList(root, q, skip) {
    const answer = await Panel.api("GET", `users?q=${enc(q)}&skip=${skip}&limit=${PAGE}`);
    const search = Panel.form([{name: "q", label: "Search", value: q,
                                placeholder: "name, login, e-mail, full name or id"}],
                              "Search", values => Panel.go("#/users?q=" + enc(values.q.trim())),
                              {action: "search"});
    const results = Panel.table([
      {title: "Id", key: "id"},
      {title: "User", render: u => userLink(u)},
      {title: "Full name", key: "full_name"},
      {title: "Login", key: "login"},
      {title: "E-mail", key: "email"},
      {title: "Created", render: u => Panel.time(u.created)},
    ], answer.users);
    const to = n => () => Panel.go(`#/users?q=${enc(q)}&skip=${n}`);
    const last = skip + answer.users.length;
    const pager = h("p", {class: "pager"},
      skip > 0 ? Panel.button("Previous", "previous", to(Math.max(0, skip - PAGE))) : null, " ",
      h("span", {class: "muted", text: answer.total ? `${skip + 1}–${last} of ${answer.total}` : ""}), " ",
      last < answer.total ? Panel.button("Next", "next", to(last)) : null);
    const create = Panel.form([
      {name: "name", label: "Name (localpart)", required: true},
      {name: "password", label: "Password", type: "password", required: true, autocomplete: "new-password"},
      {name: "full_name", label: "Full name"},
      {name: "email", label: "E-mail"},
      {name: "custom_data", label: "Custom data", type: "textarea", rows: 2},
    ], "Create", async values => {
      const body = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== ""));
      const made = await Panel.api("POST", "users", body);
      const name = made.jid.split("@")[0];
      // show the new user in the list without leaving the page (a route would clear the notice)
      history.replaceState(null, "", "#/users?q=" + enc(name));
      await redraw(root, () => drawList(root, name, 0));
      Panel.notice(`Created ${made.jid} (id ${made.id}).`, "ok");
    }, {action: "create"});
    return [search, results, pager, h("h2", {text: "Create a user"}), create];
  }

  function props(entries) {
    return h("dl", {class: "props"}, entries.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .flatMap(([k, v]) => [h("dt", {text: k}), h("dd", {}, v)]));
  }

  function customData(text) {
    if (!text) return h("p", {class: "muted", text: "None."});
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* shown as stored */ }
    return h("pre", {class: "custom-data", text: shown});
  }

  /** One user's view; every action redraws it and then says what happened. */
  async function drawUser(root, name) {
    const user = await Panel.api("GET", "users/" + Panel.seg(name));
    const path = "users/" + Panel.seg(user.jid);
    const again = async text => {
      await redraw(root, () => drawUser(root, user.jid));
      Panel.notice(text, "ok");
    };
    const {full_name: fullName, custom_data: custom, ...profile} = user.profile;
    const last = user.last_activity;
    const lockout = user.lockout;
    const sessions = [
      Panel.table([
        {title: "Session", key: "jid"}, {title: "Transport", key: "transport"},
        {title: "Address", key: "address"}, {title: "Since", render: s => Panel.time(s.since)},
        {title: "Node", key: "node"},
      ], user.sessions),
      user.unreachable.length ? h("p", {class: "muted", text: "Nodes not answering: " + user.unreachable.join(", ")}) : null,
      user.sessions.length ? Panel.form([{name: "reason", label: "Reason (optional)"}], "Kick", async values => {
        const answer = await Panel.api("POST", path + "/kick", values.reason ? {reason: values.reason} : {});
        await again(`Ended ${answer.kicked.length} session(s) of ${user.jid}.`);
      }, {action: "kick"}) : null,
    ];
    const locks = [
      h("p", {class: lockout.locked ? "lockout locked" : "lockout muted",
              text: lockout.locked ? `Locked out until ${Panel.time(lockout.until)} (${lockout.failures} failed logins).`
                                   : `Not locked out (${lockout.failures} failed logins recently).`}),
      lockout.sources.length ? Panel.table([
        {title: "Address", key: "address"}, {title: "Failures", key: "failures"},
        {title: "Until", render: s => Panel.time(s.until)},
      ], lockout.sources) : null,
      Panel.button("Unlock", "unlock", async () => {
        const answer = await Panel.api("POST", path + "/unlock", {});
        await again(`Unlocked ${answer.unlocked} (${answer.cleared} counter(s) cleared).`);
      }),
    ];
    const blocking = [
      h("p", {class: user.blocked ? "blocked locked" : "blocked muted",
              text: user.blocked ? "Blocked: cannot log in over XMPP or REST." : "Not blocked."}),
      user.blocked
        ? Panel.button("Unblock", "unblock", async () => {
          const answer = await Panel.api("POST", path + "/unblock", {});
          await again(`Unblocked ${answer.unblocked}.`);
        })
        : Panel.button("Block", "block", async () => {
          if (!Panel.confirm(`Block ${user.jid}? Its sessions end and it can no longer log in.`)) return;
          const answer = await Panel.api("POST", path + "/block", {});
          await again(`Blocked ${answer.blocked}; ${answer.ended.length} session(s) ended.`);
        }),
    ];
    const dialogs = Panel.table([
      {title: "Dialog", render: d => h("a", {href: "#/dialogs/" + enc(d.id), text: d.name || d.id})},
      {title: "Type", render: d => DIALOG_TYPES[d.type] || String(d.type)},
      {title: "Occupants", key: "occupants"},
      {title: "Updated", render: d => Panel.time(d.updated)},
    ], user.dialogs);
    const password = Panel.form([{name: "password", label: "New password", type: "password", required: true,
                                  autocomplete: "new-password"}], "Set password", async values => {
      const answer = await Panel.api("PUT", path + "/password", {password: values.password});
      await again(`Password of ${answer.changed} changed; ${answer.revoked} session token(s) revoked.`);
    }, {action: "password"});
    const remove = Panel.button("Delete user", "delete", async () => {
      if (!Panel.confirm(`Delete ${user.jid} and all its data?`)) return;
      const answer = await Panel.api("DELETE", path);
      root.replaceChildren(h("h1", {text: "Users"}), h("p", {}, h("a", {href: "#/users", text: "Back to the users"})));
      Panel.notice(`Deleted ${answer.deleted}.`, "ok");
    });
    return [
      h("p", {}, h("a", {href: "#/users", text: "← Users"})),
      h("h2", {class: "user", text: user.jid}),
      props([["Id", user.id], ["Login", user.login], ["Full name", fullName], ["E-mail", user.email],
             ["External id", user.external_id], ["Created", Panel.time(user.created)],
             ["Updated", Panel.time(user.updated)],
             ["Last activity", last ? `${Panel.time(last.at)}${last.status ? " — " + last.status : ""}` : "never"],
             ...Object.entries(profile).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])]),
      h("h2", {text: "Custom data"}), customData(custom),
      h("h2", {text: `Sessions (${user.sessions.length})`}), ...sessions,
      h("h2", {text: "Login lockout"}), ...locks,
      h("h2", {text: "Blocking"}), ...blocking,
      h("h2", {text: `Dialogs (${user.dialogs_total})`}), dialogs,
      user.dialogs_total > user.dialogs.length
        ? h("p", {class: "muted", text: `The ${user.dialogs.length} latest updated are shown.`}) : null,
      h("h2", {text: "Reset the password"}), password,
      h("h2", {text: "Delete"}), remove,
    ];
  }

  /** Replace the page's content (below its title) with what draw() builds. */
  async function redraw(root, draw) {
    const title = root.querySelector("h1");
    root.replaceChildren(title, ...(await draw()).filter(Boolean));
  }

  Panel.page("users", {
    title: "Users",
    order: 20,
    render: async (root, params) => {
      if (params.path.length) {
        await redraw(root, () => drawUser(root, params.path[0]));
      } else {
        const skip = Math.max(0, parseInt(params.query.skip, 10) || 0);
        await redraw(root, () => drawList(root, params.query.q || "", skip));
      }
    },
  });
})();
