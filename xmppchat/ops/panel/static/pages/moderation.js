// The "Moderation" page (issue 19): not built yet.
"use strict";

Panel.page("moderation", {
  title: "Moderation",
  order: 50,
  render: async (root, params) => {
    root.append(Panel.h("p", {class: "muted", text: "This page is not built yet."}));
  },
});
