// The "Chat settings" page (issue 19): the dialog extension fields, the
// default last-seen privacy and the MUC room defaults, set at run time over
// the config file (admin API: GET settings, PUT and DELETE settings/<key>;
// xmppchat/ops/admin/settings.py).
"use strict";

(() => {
  const {h} = Panel;

  function shown(value) {
    if (value === null || value === undefined) return "";
    if (Array.isArray(value)) return value.length ? value.join(", ") : "(none)";
    return typeof value === "boolean" ? (value ? "yes" : "no") : String(value);
  }

  // what the answer of a change says beyond "saved"
  function outcome(answer, verb) {
    let text = `${answer.title || answer.key}: ${verb}.`;
    if (answer.stripped) text += ` Removed from ${answer.stripped} dialog(s).`;
    if (answer.unreachable && answer.unreachable.length) {
      text += ` Not confirmed by ${answer.unreachable.join(", ")}: they take it at their next re-read (within 10 seconds once reachable).`;
    }
    return text;
  }

  async function change(draw, method, key, value, verb) {
    const answer = await Panel.api(method, "settings/" + encodeURIComponent(key),
                                   method === "PUT" ? {value} : undefined);
    await draw();
    Panel.notice(outcome(answer, verb), "ok");
  }

  // the extension fields: one chip per field with its remove button, and an add form
  function fieldsEditor(setting, draw) {
    const save = (fields, verb) => change(draw, "PUT", setting.key, fields, verb);
    const chips = setting.value.map(name => h("span", {class: "chip", dataset: {field: name}}, name, " ",
      Panel.button("Remove", "remove-field", async () => {
        if (!Panel.confirm(`Remove the extension field "${name}"? It is removed from every dialog.`)) return;
        await save(setting.value.filter(f => f !== name), `"${name}" removed`);
      }, {class: "danger", title: `Remove ${name}`})));
    const add = Panel.form([{name: "field", label: "New field", required: true, placeholder: "letters, digits, _ or -"}],
      "Add field", async values => {
        await save([...setting.value, values.field.trim()], `"${values.field.trim()}" added`);
      }, {action: "add-field", attrs: {"data-key": setting.key}});
    const full = setting.value.length >= setting.max;
    if (full) add.querySelectorAll("input, button").forEach(el => { el.disabled = true; });
    return h("div", {class: "fields"}, h("div", {class: "chips"}, chips.length ? chips : h("span", {class: "muted", text: "No field."})),
             add, full ? h("p", {class: "muted", text: `At most ${setting.max} fields: remove one to add another.`}) : null);
  }

  function valueEditor(setting, draw) {
    const options = setting.type === "bool" ? [["true", "yes"], ["false", "no"]] : setting.options;
    return Panel.form([{name: "value", label: "Value", type: "select", options, value: String(setting.value)}],
      "Save", values => change(draw, "PUT", setting.key,
                               setting.type === "bool" ? values.value === "true" : values.value, "saved"),
      {action: "save", attrs: {"data-key": setting.key}});
  }

  function row(setting, draw) {
    const editor = setting.type === "fields" ? fieldsEditor(setting, draw) : valueEditor(setting, draw);
    const revert = setting.panel === null ? h("span", {class: "muted", text: "config value in force"})
      : Panel.button("Revert to config", "revert", async () => {
        if (setting.type === "fields" && !Panel.confirm("Back to the config file's fields? A field it does not"
                                                        + " list is removed from every dialog.")) return;
        await change(draw, "DELETE", setting.key, undefined, "back to the config value");
      }, {"data-key": setting.key});
    return h("tr", {dataset: {key: setting.key}},
      h("td", {}, h("strong", {text: setting.title}), h("div", {class: "muted", text: setting.help}),
        h("code", {class: "muted", text: setting.key})),
      h("td", {class: "config", text: shown(setting.config)}),
      h("td", {class: "panel", text: setting.panel === null ? "" : shown(setting.panel)}),
      h("td", {}, editor, revert));
  }

  Panel.page("settings", {
    title: "Chat settings",
    order: 40,
    render: async root => {
      root.append(h("p", {class: "muted", text: "Values set here are kept in the server's storage and applied at once on"
        + " every node, over the config file, which keeps the defaults (shown beside them). Revert goes back to"
        + " the config file's value."}));
      const holder = h("div", {});
      root.append(holder);
      const draw = async () => {
        const {settings} = await Panel.api("GET", "settings");
        holder.replaceChildren(h("table", {class: "results settings"},
          h("thead", {}, h("tr", {}, ["Setting", "Config file", "Panel", "Change"].map(t => h("th", {text: t})))),
          h("tbody", {}, settings.map(s => row(s, draw)))));
      };
      await draw();
    },
  });
})();
