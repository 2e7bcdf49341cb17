/*
 * The "Dialogs" page (issue 19): search and view any dialog, create
 * broadcast dialogs, edit and delete dialogs, send a message into one as
 * its owner.  Admin API (xmppchat/ops/admin/dialogs.py): GET and POST
 * dialogs, GET, PUT and DELETE dialogs/<id>, POST dialogs/<id>/messages.
 *   #/dialogs?q=&type=&user=&field=&value=&skip=   the search and its results
 *   #/dialogs/<id>                                the dialog, its forms
 */
"use strict";

(() => {
  const h = Panel.h;
  const PAGE = 20;
  const TYPES = [["", "any"], ["1", "broadcast"], ["2", "group"], ["3", "private"], ["4", "public"]];

  /** "?a=1&b=x" of the non-empty values. */
  function queryString(values) {
    const given = Object.entries(values).filter(([, v]) => v !== undefined && v !== null && v !== "");
    return given.length ? "?" + new URLSearchParams(given).toString() : "";
  }

  /** Ids typed as "1, 2 3" -> [1, 2, 3]. */
  function idList(text) {
    return String(text || "").split(/[\s,]+/).filter(Boolean).map(Number);
  }

  function userName(dialog, id) {
    const user = (dialog.users || {})[String(id)];
    return user ? `${id} (${user.login || user.jid})` : String(id);
  }

  /** The extension inputs of a form ("ext.<field>") as the API's "extensions" (empty: removed). */
  function withExtensions(values, fields) {
    const body = {};
    const extensions = {};
    for (const [key, value] of Object.entries(values)) {
      if (key.startsWith("ext.")) extensions[key.slice(4)] = value === "" ? null : value;
      else body[key] = key.endsWith("_ids") ? idList(value) : value;
    }
    if (fields.length) body.extensions = extensions;
    return body;
  }

  /** Show `hash` (drawn again when it is the current one), then the notice `text`. */
  function goThenNotice(hash, text) {
    if (location.hash !== hash) {
      // after the router's own listener has cleared the previous notice
      window.addEventListener("hashchange", () => Panel.notice(text, "ok"), {once: true});
      Panel.go(hash);
    } else {
      Panel.go(hash);
      Panel.notice(text, "ok");
    }
  }

  function extensionInputs(fields, current) {
    return fields.map(f => ({name: "ext." + f, label: "Extension: " + f, value: (current || {})[f] || ""}));
  }

  // -- the search ------------------------------------------------------------------------------

  async function renderSearch(root, query) {
    const skip = Number(query.skip || 0);
    const filter = {q: query.q, type: query.type, user: query.user, skip, limit: PAGE};
    if (query.field && query.value) filter[query.field] = query.value;
    const answer = await Panel.api("GET", "dialogs" + queryString(filter));
    const fields = answer.extension_fields || [];
    root.append(Panel.form([
      {name: "q", label: "Name or id", value: query.q},
      {name: "type", label: "Type", type: "select", options: TYPES, value: query.type},
      {name: "user", label: "Owner or occupant (id, login, name)", value: query.user},
      {name: "field", label: "Extension field", type: "select",
       options: [["", "none"], ...fields.map(f => [f, f])], value: query.field},
      {name: "value", label: "Value", value: query.value},
    ], "Search", values => Panel.go("#/dialogs" + queryString(values)), {action: "search"}));
    root.append(h("p", {class: "muted", text: `${answer.total} dialog(s)`}));
    root.append(Panel.table([
      {title: "Name", render: d => h("a", {href: "#/dialogs/" + d.id, text: d.name || d.id})},
      {title: "Type", key: "type_name"},
      {title: "Owner", key: "owner_id"},
      {title: "Occupants", key: "occupants_count"},
      {title: "Extensions", render: d => Object.entries(d.extensions).map(([k, v]) => `${k}=${v}`).join(", ")},
      {title: "Last message", render: d => d.last_message ? d.last_message.text || "" : ""},
      {title: "Updated", render: d => Panel.time(d.updated_at)},
    ], answer.items));
    const pager = h("p", {class: "pager"});
    if (skip > 0) {
      pager.append(h("a", {href: "#/dialogs" + queryString({...query, skip: Math.max(0, skip - PAGE)}),
                            dataset: {action: "previous"}, text: "Previous"}), " ");
    }
    if (skip + PAGE < answer.total) {
      pager.append(h("a", {href: "#/dialogs" + queryString({...query, skip: skip + PAGE}),
                            dataset: {action: "next"}, text: "Next"}));
    }
    root.append(pager);
    root.append(h("h2", {text: "New broadcast dialog"}));
    root.append(Panel.form([
      {name: "name", label: "Name", required: true},
      {name: "owner", label: "Owner (id, login, name)", required: true},
      {name: "photo", label: "Photo"},
      {name: "description", label: "Description"},
      {name: "admins_ids", label: "Admins (ids)"},
      ...extensionInputs(fields),
    ], "Create", async values => {
      const dialog = await Panel.api("POST", "dialogs", withExtensions(values, fields));
      goThenNotice("#/dialogs/" + dialog.id, `Broadcast dialog "${dialog.name}" created.`);
    }, {action: "create-broadcast", attrs: {id: "create-broadcast"}}));
  }

  // -- one dialog ------------------------------------------------------------------------------

  async function renderDialog(root, id) {
    const d = await Panel.api("GET", "dialogs/" + Panel.seg(id));
    const fields = d.extension_fields || [];
    const last = d.last_message;
    const props = [
      ["Id", d.id], ["Name", d.name], ["Type", `${d.type} (${d.type_name})`],
      ["Owner", userName(d, d.owner_id)],
      ["Occupants", `${d.occupants_count}: ` + d.occupants_ids.map(i => userName(d, i)).join(", ")],
      ["Admins", d.admins_ids.map(i => userName(d, i)).join(", ")],
      ["Photo", d.photo], ["Description", d.description],
      ["Extensions", Object.entries(d.extensions).map(([k, v]) => `${k}=${v}`).join(", ")],
      ["Room", d.xmpp_room_jid], ["Created", Panel.time(d.created_at)], ["Updated", Panel.time(d.updated_at)],
      ["Messages", d.messages_count],
      ["Last message", last ? `${last.text || ""} (from ${userName(d, last.sender_id)}, ${Panel.time(last.date_sent)})`
                            : "none"],
    ];
    if (d.subscribers_count !== undefined) props.push(["Subscribers", d.subscribers_count]);
    root.append(h("p", {}, h("a", {href: "#/dialogs", text: "All dialogs"})));
    root.append(h("dl", {class: "props", id: "dialog-details"},
                  props.flatMap(([k, v]) => [h("dt", {text: k}), h("dd", {text: v === null || v === undefined ? "" : String(v)})])));

    root.append(h("h2", {text: "Send a message as the owner"}));
    root.append(Panel.form([
      {name: "message", label: "Message", type: "textarea", required: true, rows: 2},
    ], "Send", async values => {
      const sent = await Panel.api("POST", `dialogs/${Panel.seg(d.id)}/messages`, values);
      goThenNotice("#/dialogs/" + d.id, `Message ${sent.id} sent.`);
    }, {action: "send", attrs: {id: "send-message"}}));

    root.append(h("h2", {text: "Edit"}));
    root.append(Panel.form([
      {name: "name", label: "Name", value: d.name},
      {name: "photo", label: "Photo", value: d.photo},
      {name: "description", label: "Description", value: d.description},
      {name: "occupants_ids", label: "Occupants (ids)", value: d.occupants_ids.join(", ")},
      {name: "admins_ids", label: "Admins (ids)", value: d.admins_ids.join(", ")},
      ...extensionInputs(fields, d.extensions),
    ], "Save", async values => {
      const body = withExtensions(values, fields);
      // unchanged lists are left out: a private or public dialog's occupants cannot change
      for (const key of ["occupants_ids", "admins_ids"]) {
        if (body[key].join(",") === d[key].join(",")) delete body[key];
      }
      await Panel.api("PUT", "dialogs/" + Panel.seg(d.id), body);
      goThenNotice("#/dialogs/" + d.id, "Saved.");
    }, {action: "save", attrs: {id: "edit-dialog"}}));

    root.append(h("h2", {text: "Delete"}));
    root.append(h("p", {}, Panel.button("Delete for everyone", "delete", async () => {
      if (!Panel.confirm(`Delete "${d.name || d.id}" and its messages for everyone?`)) return;
      await Panel.api("DELETE", "dialogs/" + Panel.seg(d.id));
      goThenNotice("#/dialogs", "Dialog deleted.");
    })));
  }

  Panel.page("dialogs", {
    title: "Dialogs",
    order: 30,
    render: async (root, params) => {
      if (params.path.length) await renderDialog(root, params.path[0]);
      else await renderSearch(root, params.query);
    },
  });
})();
