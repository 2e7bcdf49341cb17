// The "Announcements" page (issue 19): a headline to online users or to all
// users (POST announce, confirmed first for "all"), and the last
// announcements sent through this server process (GET announcements).
"use strict";

(() => {
  const {h} = Panel;

  function outcome(answer) {
    const parts = [`${answer.online} online session(s) got it`];
    if (answer.stored !== undefined) parts.push(`stored for ${answer.stored} offline user(s)`);
    if (answer.refused) parts.push(`${answer.refused} refused (offline queue full)`);
    if (answer.unreachable && answer.unreachable.length) parts.push(`no answer from ${answer.unreachable.join(", ")}`);
    return parts.join("; ");
  }

  async function drawList(list) {
    const data = await Panel.api("GET", "announcements?limit=50");
    list.replaceChildren(Panel.table([
      {title: "Sent", render: a => Panel.time(a.at)},
      {title: "By", key: "admin"},
      {title: "To", render: a => a.to === "all" ? "all users" : "online users"},
      {title: "Subject", key: "subject"},
      {title: "Message", render: a => h("span", {class: "announcement-body", text: a.body})},
      {title: "Online", key: "online"},
      {title: "Stored offline", render: a => a.stored === undefined ? "" : String(a.stored)},
    ], data.announcements));
  }

  Panel.page("announcements", {
    title: "Announcements",
    order: 60,
    render: async (root) => {
      const list = h("div", {class: "announcement-list"});
      root.append(
        h("p", {class: "muted", text: "A headline message from the server to every online session, or also stored "
                                     + "for every user who is offline (delivered at the next login)."}),
        Panel.form([
          {name: "to", label: "To", type: "select", value: "online",
           options: [["online", "online users"], ["all", "all users (also stored offline)"]]},
          {name: "subject", label: "Subject", placeholder: "optional"},
          {name: "body", label: "Message", type: "textarea", required: true},
        ], "Send", async values => {
          if (values.to === "all" && !Panel.confirm("Send this to ALL users, storing it for every offline account?")) return;
          const answer = await Panel.api("POST", "announce", {
            to: values.to, body: values.body, ...(values.subject.trim() ? {subject: values.subject} : {})});
          Panel.notice("Sent: " + outcome(answer) + ".", "ok");
          for (const name of ["subject", "body"]) root.querySelector(`[name=${name}]`).value = "";
          await drawList(list);
        }, {action: "announce"}),
        h("h2", {text: "Last announcements"}),
        h("p", {class: "muted", text: "Kept in the memory of the server process that sent them (forgotten at a restart)."}),
        list);
      await drawList(list);
    },
  });
})();
