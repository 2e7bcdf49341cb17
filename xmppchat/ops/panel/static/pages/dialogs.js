// The "Dialogs" page (issue 19): not built yet.
"use strict";

Panel.page("dialogs", {
  title: "Dialogs",
  order: 30,
  render: async (root, params) => {
    root.append(Panel.h("p", {class: "muted", text: "This page is not built yet."}));
  },
});
