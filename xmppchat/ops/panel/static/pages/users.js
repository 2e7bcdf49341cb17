// The "Users" page (issue 19): not built yet.
"use strict";

Panel.page("users", {
  title: "Users",
  order: 20,
  render: async (root, params) => {
    root.append(Panel.h("p", {class: "muted", text: "This page is not built yet."}));
  },
});
