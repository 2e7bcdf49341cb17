// The "Applications" page (issue 19): the configured [[rest.apps]], their
// auth key (masked) and JWT secret, rotation of either (the new value shown
// once) and the way back to the config file's (admin API: GET apps,
// POST apps/<id>/rotate, DELETE settings/rest.apps.<id>.<secret>;
// xmppchat/ops/admin/settings.py).
"use strict";

(() => {
  const {h} = Panel;
  const NAMES = {auth_key: "auth key", jwt_secret: "JWT secret"};
  const CONSEQUENCES = {
    auth_key: "New sessions need the new key at once; sessions already issued stay valid until they expire.",
    jwt_secret: "Only JWTs signed with the new secret are accepted, and every session of a JWT user ends.",
  };

  function secretCell(app, what, draw, reveal) {
    const appId = app.application_id;
    const set = what === "auth_key" || app.jwt_secret_set;
    const rotated = app[what + "_rotated"];
    const label = what === "auth_key" ? app.auth_key : (set ? "set" : "not set (JWT login off)");
    const rotate = Panel.button("Rotate", "rotate-" + what.replace("_", "-"), async () => {
      if (!Panel.confirm(`Rotate the ${NAMES[what]} of application ${appId}? ${CONSEQUENCES[what]}`)) return;
      const answer = await Panel.api("POST", `apps/${Panel.seg(appId)}/rotate`, {what});
      await draw();
      reveal(answer);
    }, {disabled: !set, "data-app": appId});
    const revert = rotated ? Panel.button("Revert to config", "revert-" + what.replace("_", "-"), async () => {
      if (!Panel.confirm(`Back to the ${NAMES[what]} of the config file for application ${appId}?`)) return;
      await Panel.api("DELETE", `settings/rest.apps.${appId}.${what}`);
      await draw();
      Panel.notice(`Application ${appId}: the config file's ${NAMES[what]} is in force again.`, "ok");
    }, {"data-app": appId}) : null;
    return h("div", {class: "secret-cell"}, h("code", {class: what, text: label}), " ",
             h("span", {class: "muted", text: rotated ? "(rotated in the panel)" : "(config file)"}), " ",
             rotate, " ", revert);
  }

  Panel.page("apps", {
    title: "Applications",
    order: 70,
    render: async root => {
      root.append(h("p", {class: "muted", text: "The application this server serves ([[rest.apps]] in the config file)."
        + " A rotated key or secret is made by the server, kept in its storage and in force at once on every node;"
        + " it is shown once, right after the rotation."}));
      const revealed = h("div", {});
      const holder = h("div", {});
      root.append(revealed, holder);
      const reveal = answer => {
        let text = `Application ${answer.application_id}: new ${NAMES[answer.what]}.`;
        if (answer.revoked_tokens) text += ` ${answer.revoked_tokens} JWT session token(s) ended.`;
        if (answer.unreachable && answer.unreachable.length) {
          text += ` Not confirmed by ${answer.unreachable.join(", ")}: they take it at their next re-read (within 10 seconds once reachable).`;
        }
        Panel.notice(text, "ok");
        revealed.replaceChildren(h("div", {id: "new-secret", class: "new-secret"},
          h("strong", {text: `New ${NAMES[answer.what]} of application ${answer.application_id}`}),
          h("code", {text: answer.value}),
          h("span", {class: "muted", text: "Copy it now: it is not shown again."}),
          Panel.button("Hide", "hide-secret", async () => revealed.replaceChildren())));
      };
      const draw = async () => {
        const {apps} = await Panel.api("GET", "apps");
        holder.replaceChildren(Panel.table([
          {title: "Application id", key: "application_id"},
          {title: "Auth key", render: app => secretCell(app, "auth_key", draw, reveal)},
          {title: "JWT secret", render: app => secretCell(app, "jwt_secret", draw, reveal)},
        ], apps));
      };
      await draw();
    },
  });
})();
