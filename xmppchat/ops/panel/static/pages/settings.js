// The "Chat settings" page (issue 19): not built yet.
"use strict";

Panel.page("settings", {
  title: "Chat settings",
  order: 40,
  render: async (root, params) => {
    root.append(Panel.h("p", {class: "muted", text: "This page is not built yet."}));
  },
});
